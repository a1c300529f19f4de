import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { TidingsError, appDisabled } from "../domain/errors.ts";

/** `readTopics`: topics whose messages the app may read though another app sent them. */
export type Principal = { kind: "admin" } | { kind: "app"; app: string; readTopics: readonly string[] };

export interface AppIdentity {
  name: string;
  readTopics: string[];
  /** A disabled app's key is refused with 403 app_disabled (an unknown key is 401). */
  enabled: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal;
  }
}

export const hashKey = (key: string): Buffer => createHash("sha256").update(key).digest();
export const newApiKey = (): string => `tdk_${randomBytes(24).toString("base64url")}`;

/**
 * How long a node trusts a key it looked up. A change to an app (delete, disable, rotate) takes
 * effect at once on the node that made it (`forget()`), and within this on the other nodes.
 */
const KEY_CACHE_MS = 5_000;

/** Authenticates `Authorization: Bearer <key>` as the admin or as one app. */
export class Authenticator {
  private readonly adminHash: Buffer;
  /** Keys the console sessions' fingerprints of the admin key: derived from it, never the key. */
  private readonly sessionKey: Buffer;
  private readonly cache = new Map<string, { app: AppIdentity | null; until: number }>();
  /** Moves on each `forget()`, so that a lookup that began before it does not cache what it read. */
  private generation = 0;

  constructor(
    adminKey: string,
    private readonly appByKeyHash: (hash: Buffer) => Promise<AppIdentity | null>,
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
    const hash = hashKey(match[1]!);
    if (timingSafeEqual(hash, this.adminHash)) return { kind: "admin" };
    const cacheKey = hash.toString("base64");
    const now = Date.now();
    let hit = this.cache.get(cacheKey);
    if (!hit || hit.until < now) {
      const generation = this.generation;
      hit = { app: await this.appByKeyHash(hash), until: now + KEY_CACHE_MS };
      if (generation === this.generation) {
        if (this.cache.size > 10_000) this.cache.clear();
        this.cache.set(cacheKey, hit);
      }
    }
    if (hit.app === null) throw new TidingsError("unauthorized", "the key is not valid");
    if (!hit.app.enabled) throw appDisabled(hit.app.name);
    return { kind: "app", app: hit.app.name, readTopics: hit.app.readTopics };
  }

  /** Forgets cached keys (after an app is changed or deleted on this node), lookups in flight included. */
  forget(): void {
    this.generation++;
    this.cache.clear();
  }
}

/** Who a principal is, as alerts (and other records of who did what) name them: "admin", "app shop". */
export function actorOf(principal: Principal): string {
  return principal.kind === "admin" ? "admin" : `app ${principal.app}`;
}

/** The app a principal acts for; null for the admin, who acts on every app's messages. */
export function appOf(principal: Principal): string | null {
  return principal.kind === "app" ? principal.app : null;
}
