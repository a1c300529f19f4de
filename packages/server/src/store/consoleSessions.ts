import type { Db } from "./db.ts";

export interface SessionRecord {
  csrfToken: string;
  expiresAt: string;
}

// $1 sha256 of the session id; $2 CSRF token; $3 lifetime in ms.
// Starts a session, and clears out expired ones on the way (sign-ins are rare, the index is small).
export async function createSession(db: Db, idHash: Buffer, csrfToken: string, ttlMs: number): Promise<SessionRecord> {
  const { rows } = await db.query(
    `with gone as (delete from console_sessions where expires_at < now())
     insert into console_sessions (id_hash, csrf_token, expires_at)
     values ($1, $2, now() + make_interval(secs => $3::float8 / 1000))
     returning csrf_token, expires_at`,
    [idHash, csrfToken, ttlMs],
  );
  return { csrfToken: rows[0].csrf_token, expiresAt: (rows[0].expires_at as Date).toISOString() };
}

// $1 sha256 of the session id. A session past its expiry is not found.
export async function findSession(db: Db, idHash: Buffer): Promise<SessionRecord | null> {
  const { rows } = await db.query({
    name: "find_console_session",
    text: "select csrf_token, expires_at from console_sessions where id_hash = $1 and expires_at > now()",
    values: [idHash],
  });
  return rows[0] ? { csrfToken: rows[0].csrf_token, expiresAt: (rows[0].expires_at as Date).toISOString() } : null;
}

// $1 sha256 of the session id.
export async function deleteSession(db: Db, idHash: Buffer): Promise<void> {
  await db.query("delete from console_sessions where id_hash = $1", [idHash]);
}
