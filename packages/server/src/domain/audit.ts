/**
 * The audit log's entries, made from what a request did: who, what, to what, and (for the
 * configuration) the object before and after as the API shows it. Secrets never go in.
 */

/**
 * How a route is audited (declared in its `config.audit`): a change to the configuration
 * (`before`/`after`: the object as the API shows it) or a hand action (`detail`: the request's
 * options and the answer). `peopleOnly`: an app's own calls (the SDK committing its prepared
 * messages) are its protocol, not a hand action, and are not recorded.
 */
export interface AuditSpec {
  readonly action: string;
  readonly kind: "config" | "hand";
  readonly peopleOnly?: boolean;
}

export const configChange = (action: string): AuditSpec => ({ action, kind: "config" });
export const handAction = (action: string, options: { peopleOnly?: boolean } = {}): AuditSpec => ({ action, kind: "hand", ...options });

export interface AuditEntry {
  actorKind: "admin" | "operator" | "app";
  actor: string;
  address: string | null;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
  detail: unknown;
}

/** At most this many characters of objects named in one target (the audit filter takes 400). */
const TARGETS_LENGTH = 300;

/**
 * The target of an action on several objects of a kind: `message/a, message/b` (one alone is its
 * own target, as a single call records it), as many as fit in 300 characters, then `and 990 more`.
 */
export function targetOfMany(object: string, names: readonly string[]): string | null {
  const distinct = [...new Set(names)].map((name) => `${object}/${name}`);
  if (distinct.length === 0) return null;
  let named = distinct[0]!;
  let count = 1;
  while (count < distinct.length && named.length + 2 + distinct[count]!.length <= TARGETS_LENGTH) named += `, ${distinct[count++]}`;
  return count < distinct.length ? `${named} and ${distinct.length - count} more` : named;
}

/** Fields that hold a secret wherever they appear (keys, signing secrets, passwords, tokens). */
const SECRET_FIELDS = new Set(["secret", "apiKey", "key", "adminKey", "keyHash", "password", "token", "csrfToken"]);
/** A URL's user information: its password masked, or all of it when it is a token (`nats://token@host`). */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@]+)@/gi;
const maskUserinfo = (_: string, scheme: string, info: string): string => {
  const colon = info.indexOf(":");
  return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:***` : "***"}@`;
};

/**
 * A copy of `value` fit for the audit log: fields that hold secrets left out, header values
 * masked, passwords in URLs masked. Applied to whatever a route records, on top of the API's own
 * masking, so that a field added later does not leak through.
 */
export function redact(value: unknown, field?: string): unknown {
  if (typeof value === "string") return field !== undefined && SECRET_FIELDS.has(field) ? undefined : value.replace(URL_USERINFO, maskUserinfo);
  if (Array.isArray(value)) return value.map((v) => redact(v));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    if (SECRET_FIELDS.has(name)) continue;
    // Header values may carry credentials (Authorization): the API masks them, and so does the log.
    if (name === "headers" && v !== null && typeof v === "object" && !Array.isArray(v)) {
      out[name] = Object.fromEntries(Object.keys(v).map((h) => [h, "***"]));
      continue;
    }
    out[name] = redact(v, name);
  }
  return out;
}
