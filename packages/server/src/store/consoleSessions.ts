import type { Db } from "./db.ts";

export interface SessionRecord {
  csrfToken: string;
  expiresAt: string;
}

// $1 sha256 of the session id; $2 CSRF token; $3 lifetime in ms; $4 the admin key's fingerprint.
// Starts a session, and clears out expired ones on the way (sign-ins are rare, the index is small).
export async function createSession(db: Db, idHash: Buffer, csrfToken: string, ttlMs: number, keyFingerprint: Buffer): Promise<SessionRecord> {
  const { rows } = await db.query(
    `with gone as (delete from console_sessions where expires_at < now())
     insert into console_sessions (id_hash, csrf_token, expires_at, key_fingerprint)
     values ($1, $2, now() + make_interval(secs => $3::float8 / 1000), $4)
     returning csrf_token, expires_at`,
    [idHash, csrfToken, ttlMs, keyFingerprint],
  );
  return { csrfToken: rows[0].csrf_token, expiresAt: (rows[0].expires_at as Date).toISOString() };
}

// $1 sha256 of the session id; $2 the current admin key's fingerprint for it. A session past its
// expiry, or started with another admin key, is not found.
export async function findSession(db: Db, idHash: Buffer, keyFingerprint: Buffer): Promise<SessionRecord | null> {
  const { rows } = await db.query({
    name: "find_console_session",
    text: "select csrf_token, expires_at from console_sessions where id_hash = $1 and key_fingerprint = $2 and expires_at > now()",
    values: [idHash, keyFingerprint],
  });
  return rows[0] ? { csrfToken: rows[0].csrf_token, expiresAt: (rows[0].expires_at as Date).toISOString() } : null;
}

// $1 sha256 of the session id.
export async function deleteSession(db: Db, idHash: Buffer): Promise<void> {
  await db.query("delete from console_sessions where id_hash = $1", [idHash]);
}
