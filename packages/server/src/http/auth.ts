import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { TidingsError, appDisabled } from "../domain/errors.ts";
import type { Principal, Role } from "../domain/roles.ts";

export type { Principal } from "../domain/roles.ts";

export interface AppIdentity {
  name: string;
  readTopics: string[];
  /** A disabled app's key is refused with 403 app_disabled (an unknown key is 401). */
  enabled: boolean;
}

export interface OperatorIdentity {
  id: number;
  name: string;
  role: Role;
}

/** Where the Authenticator looks keys up (by their sha256). */
export interface KeyLookups {
  app(hash: Buffer): Promise<AppIdentity | null>;
  operator(hash: Buffer): Promise<OperatorIdentity | null>;
}

/** Who a key stands for; `operatorId` names an operator's row (console sessions keep it). */
export interface Identified {
  principal: Principal;
  operatorId: number | null;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal;
  }
}

export const hashKey = (key: string): Buffer => createHash("sha256").update(key).digest();
export const newApiKey = (): string => `tdk_${randomBytes(24).toString("base64url")}`;
/** Operators' keys have their own prefix: a key is looked up among apps or operators, not both. */
const OPERATOR_KEY_PREFIX = "tdo_";
export const newOperatorKey = (): string => `${OPERATOR_KEY_PREFIX}${randomBytes(24).toString("base64url")}`;

type Looked = { app: AppIdentity } | { operator: OperatorIdentity } | null;

/**
 * How long a node trusts a key it looked up. A change to an app or an operator (delete, disable,
 * rotate, a new role) takes effect at once on the node that made it (`forget()`), and within this
 * on the other nodes.
 */
const KEY_CACHE_MS = 5_000;

/** Authenticates `Authorization: Bearer <key>` as the admin, an operator or an app. */
export class Authenticator {
  private readonly adminHash: Buffer;
  /** Keys the console sessions' fingerprints of the admin key: derived from it, never the key. */
  private readonly sessionKey: Buffer;
  private readonly cache = new Map<string, { found: Looked; until: number }>();
  /** Moves on each `forget()`, so that a lookup that began before it does not cache what it read. */
  private generation = 0;

  constructor(
    adminKey: string,
    private readonly lookups: KeyLookups,
  ) {
    this.adminHash = hashKey(adminKey);
    this.sessionKey = createHmac("sha256", adminKey).update("tidings console sessions").digest();
  }

  /**
   * A console session's fingerprint of the admin key it was started with (HMAC-SHA256 over the
   * session's id hash): stored with the session, it no longer matches once the key changes.
   */
  sessionFingerprint(sessionIdHash: Buffer): Buffer {
    return createHmac("sha256", this.sessionKey).update(sessionIdHash).digest();
  }

  async authenticate(request: FastifyRequest): Promise<Principal> {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) throw new TidingsError("unauthorized", "send Authorization: Bearer <key>");
    return (await this.identify(match[1]!)).principal;
  }

  /** Who `key` stands for: 401 when nobody, 403 app_disabled for a disabled app's key. */
  async identify(key: string): Promise<Identified> {
    const hash = hashKey(key);
    if (timingSafeEqual(hash, this.adminHash)) return { principal: { kind: "admin" }, operatorId: null };
    const cacheKey = hash.toString("base64");
    const now = Date.now();
    let hit = this.cache.get(cacheKey);
    if (!hit || hit.until < now) {
      const generation = this.generation;
      hit = { found: await this.lookUp(key, hash), until: now + KEY_CACHE_MS };
      if (generation === this.generation) {
        if (this.cache.size > 10_000) this.cache.clear();
        this.cache.set(cacheKey, hit);
      }
    }
    const found = hit.found;
    if (found === null) throw new TidingsError("unauthorized", "the key is not valid");
    if ("operator" in found) {
      const { id, name, role } = found.operator;
      return { principal: { kind: "operator", name, role }, operatorId: id };
    }
    if (!found.app.enabled) throw appDisabled(found.app.name);
    return { principal: { kind: "app", app: found.app.name, readTopics: found.app.readTopics }, operatorId: null };
  }

  private async lookUp(key: string, hash: Buffer): Promise<Looked> {
    if (key.startsWith(OPERATOR_KEY_PREFIX)) {
      const operator = await this.lookups.operator(hash);
      return operator ? { operator } : null;
    }
    const app = await this.lookups.app(hash);
    return app ? { app } : null;
  }

  /** Forgets cached keys (after an app is changed or deleted on this node), lookups in flight included. */
  forget(): void {
    this.generation++;
    this.cache.clear();
  }
}

/** Who a principal is, as alerts (and other records of who did what) name them: "admin", "operator ana", "app shop". */
export function actorOf(principal: Principal): string {
  if (principal.kind === "admin") return "admin";
  return principal.kind === "operator" ? `operator ${principal.name}` : `app ${principal.app}`;
}

/** The app a principal acts for; null for people (the admin key, operators), who act on every app's messages. */
export function appOf(principal: Principal): string | null {
  return principal.kind === "app" ? principal.app : null;
}
