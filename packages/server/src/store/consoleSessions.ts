import type { Role } from "../domain/roles.ts";
import type { Db } from "./db.ts";

export interface SessionRecord {
  csrfToken: string;
  expiresAt: string;
  /** Whose session it is: null for the admin key's, else the operator's name and current role. */
  operator: { name: string; role: Role } | null;
}

// $1 sha256 of the session id; $2 CSRF token; $3 lifetime in ms; $4 the admin key's fingerprint;
// $5 the operator's id (null: signed in with the admin key). Starts a session, and clears out
// expired ones on the way (sign-ins are rare, the index is small).
export async function createSession(
  db: Db,
  idHash: Buffer,
  csrfToken: string,
  ttlMs: number,
  keyFingerprint: Buffer,
  operatorId: number | null,
): Promise<{ csrfToken: string; expiresAt: string }> {
  const { rows } = await db.query(
    `with gone as (delete from console_sessions where expires_at < now())
     insert into console_sessions (id_hash, csrf_token, expires_at, key_fingerprint, operator_id)
     values ($1, $2, now() + make_interval(secs => $3::float8 / 1000), $4, $5)
     returning csrf_token, expires_at`,
    [idHash, csrfToken, ttlMs, keyFingerprint, operatorId],
  );
  return { csrfToken: rows[0].csrf_token, expiresAt: (rows[0].expires_at as Date).toISOString() };
}

// $1 sha256 of the session id; $2 the current admin key's fingerprint for it. A session past its
// expiry, or started with another admin key, is not found; an operator's comes with their role
// as it is now.
export async function findSession(db: Db, idHash: Buffer, keyFingerprint: Buffer): Promise<SessionRecord | null> {
  const { rows } = await db.query({
    name: "find_console_session",
    text: `select s.csrf_token, s.expires_at, o.name as operator_name, o.role as operator_role
             from console_sessions s left join operators o on o.id = s.operator_id
            where s.id_hash = $1 and s.key_fingerprint = $2 and s.expires_at > now()`,
    values: [idHash, keyFingerprint],
  });
  const r = rows[0];
  if (!r) return null;
  return {
    csrfToken: r.csrf_token,
    expiresAt: (r.expires_at as Date).toISOString(),
    operator: r.operator_name === null ? null : { name: r.operator_name, role: r.operator_role },
  };
}

// $1 sha256 of the session id.
export async function deleteSession(db: Db, idHash: Buffer): Promise<void> {
  await db.query("delete from console_sessions where id_hash = $1", [idHash]);
}
