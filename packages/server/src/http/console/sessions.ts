import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { TidingsError, forbidden, tooManyRequests } from "../../domain/errors.ts";
import type { Authenticator, Principal } from "../auth.ts";
import type { Db } from "../../store/db.ts";
import { createSession, deleteSession, findSession, type SessionRecord } from "../../store/consoleSessions.ts";
import { SignInLimiter } from "./signInLimiter.ts";

/** A console session lasts a working day; then the operator signs in again. */
export const SESSION_TTL_MS = 12 * 3_600_000;
/**
 * Over plain http (a local service) the cookie cannot be Secure; over https (directly, or through
 * a proxy trusted by TIDINGS_TRUST_PROXY that says so in X-Forwarded-Proto) it is, and `__Host-`
 * pins it to this origin.
 */
const COOKIE_HTTP = "tidings_session";
const COOKIE_HTTPS = "__Host-tidings_session";
export const CSRF_HEADER = "x-csrf-token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const sha256 = (text: string): Buffer => createHash("sha256").update(text).digest();

/** Session ids are 32 random bytes in base64url: any other cookie value is not one of ours. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** `a=1; b=2` → the raw value of `name` (not decoded), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sessionId(request: FastifyRequest): string | undefined {
  return readCookie(request.headers.cookie, COOKIE_HTTPS) ?? readCookie(request.headers.cookie, COOKIE_HTTP);
}

const ended = () => new TidingsError("unauthorized", "the console session has expired or ended; sign in again");

function sameText(a: string, b: string): boolean {
  const x = sha256(a);
  const y = sha256(b);
  return timingSafeEqual(x, y);
}

/**
 * Console sign-in: the admin key or an operator's key is exchanged once for a random session id in an HttpOnly,
 * SameSite=Strict cookie (Secure over https). Sessions live in the database so that every
 * service process behind a balancer accepts them. A request authenticated by the cookie
 * that changes anything must also carry the session's CSRF token in `x-csrf-token`.
 */
export class ConsoleSessions {
  private readonly current = new WeakMap<FastifyRequest, SessionRecord>();

  constructor(
    private readonly db: Db,
    private readonly auth: Authenticator,
    /** Failed sign-ins per client address (10 per 15 minutes by default). */
    private readonly limiter = new SignInLimiter(),
  ) {}

  /**
   * Checks the key (the admin key or an operator's; an app's is refused) and starts a session
   * for whoever it stands for; the reply gets the cookie. `field` names the key in a refusal.
   */
  async signIn(key: string, field: string, request: FastifyRequest, reply: FastifyReply): Promise<SessionRecord> {
    const waitMs = this.limiter.retryAfterMs(request.ip);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw tooManyRequests(`too many failed sign-ins from this address: try again in ${seconds} s`, seconds);
    }
    // The Authenticator is the one place that knows the keys.
    const who = await this.auth.identify(key).catch(() => null);
    if (who === null || who.principal.kind === "app") {
      this.limiter.failed(request.ip);
      throw new TidingsError("unauthorized", "that is neither the admin key nor an operator's key", field);
    }
    this.limiter.succeeded(request.ip);
    const id = randomBytes(32).toString("base64url");
    const idHash = sha256(id);
    const csrfToken = randomBytes(32).toString("base64url");
    const created = await createSession(this.db, idHash, csrfToken, SESSION_TTL_MS, this.auth.sessionFingerprint(idHash), who.operatorId);
    const p = who.principal;
    const session: SessionRecord = { ...created, operator: p.kind === "operator" ? { name: p.name, role: p.role } : null };
    const secure = request.protocol === "https";
    void reply.header(
      "set-cookie",
      `${secure ? COOKIE_HTTPS : COOKIE_HTTP}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? "; Secure" : ""}`,
    );
    return session;
  }

  /** Ends the caller's session (if it has one) and clears the cookie. */
  async signOut(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const id = sessionId(request);
    if (id && SESSION_ID.test(id)) await deleteSession(this.db, sha256(id));
    const secure = request.protocol === "https";
    void reply.header("set-cookie", `${secure ? COOKIE_HTTPS : COOKIE_HTTP}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`);
  }

  /**
   * The admin or the operator whose session it is, when the request carries a live session cookie (and, unless it only reads,
   * the session's CSRF token); null when it has no cookie or sends a Bearer key instead.
   */
  async authenticate(request: FastifyRequest): Promise<Principal | null> {
    if (request.headers.authorization) return null;
    const id = sessionId(request);
    if (id === undefined) return null;
    // A garbled cookie is an ended session (401), not a fault: nothing to look up.
    if (!SESSION_ID.test(id)) throw ended();
    const idHash = sha256(id);
    // Not found: expired, signed out, or started with an admin key that has since changed.
    const session = await findSession(this.db, idHash, this.auth.sessionFingerprint(idHash));
    if (!session) throw ended();
    if (!SAFE_METHODS.has(request.method)) {
      const token = request.headers[CSRF_HEADER];
      if (typeof token !== "string" || !sameText(token, session.csrfToken)) {
        throw forbidden(`a change made with the session cookie needs the session's ${CSRF_HEADER} header`);
      }
    }
    this.current.set(request, session);
    return session.operator ? { kind: "operator", ...session.operator } : { kind: "admin" };
  }

  /** The session the request was authenticated by, if it was. */
  sessionOf(request: FastifyRequest): SessionRecord | undefined {
    return this.current.get(request);
  }
}
