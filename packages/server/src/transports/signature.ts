import { createHmac, randomBytes } from "node:crypto";

/** A new Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

const keyCache = new Map<string, Buffer>();
function keyOf(secret: string): Buffer {
  let key = keyCache.get(secret);
  if (!key) {
    key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
    keyCache.set(secret, key);
  }
  return key;
}

/**
 * The `webhook-signature` header of the Standard Webhooks spec: `v1,` and the base64
 * HMAC-SHA256 of `id.timestamp.body`. Computed with node:crypto rather than the
 * `standardwebhooks` package, whose pure-JS HMAC costs several times more CPU per delivery;
 * tests verify our headers with that package.
 */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", keyOf(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}
