import type { Db } from "./db.ts";

export interface AppRecord {
  name: string;
  checkUrl: string | null;
  readTopics: string[];
  /** False while an admin has disabled the app: its key is refused with 403 app_disabled. */
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

const toApp = (r: Record<string, unknown>): AppRecord => ({
  name: r.name as string,
  checkUrl: r.check_url as string | null,
  readTopics: r.read_topics as string[],
  enabled: r.enabled as boolean,
  createdAt: (r.created_at as Date).toISOString(),
  updatedAt: (r.updated_at as Date).toISOString(),
});

/** Returns null when the name is taken. */
export async function createApp(
  db: Db,
  name: string,
  keyHash: Buffer,
  secret: string,
  checkUrl: string | null,
  readTopics: string[],
): Promise<AppRecord | null> {
  const { rows } = await db.query(
    `insert into apps (name, key_hash, secret, check_url, read_topics) values ($1, $2, $3, $4, $5)
     on conflict (name) do nothing returning *`,
    [name, keyHash, secret, checkUrl, readTopics],
  );
  return rows[0] ? toApp(rows[0]) : null;
}

export async function listApps(db: Db): Promise<AppRecord[]> {
  const { rows } = await db.query("select * from apps where deleted_at is null order by name");
  return rows.map(toApp);
}

export async function getApp(db: Db, name: string): Promise<AppRecord | null> {
  const { rows } = await db.query("select * from apps where name = $1 and deleted_at is null", [name]);
  return rows[0] ? toApp(rows[0]) : null;
}

export interface AppPatch {
  checkUrl?: string | null;
  readTopics?: string[];
  keyHash?: Buffer;
  secret?: string;
  enabled?: boolean;
}

export async function updateApp(db: Db, name: string, patch: AppPatch): Promise<AppRecord | null> {
  const { rows } = await db.query(
    `update apps set check_url = case when $2 then $3 else check_url end, read_topics = coalesce($4, read_topics),
            key_hash = coalesce($5, key_hash), secret = coalesce($6, secret), enabled = coalesce($7, enabled), updated_at = now()
      where name = $1 and deleted_at is null returning *`,
    [name, patch.checkUrl !== undefined, patch.checkUrl ?? null, patch.readTopics ?? null, patch.keyHash ?? null, patch.secret ?? null, patch.enabled ?? null],
  );
  return rows[0] ? toApp(rows[0]) : null;
}

/**
 * Deletes an app softly: its key stops working at once, its messages stay, and its name is never
 * given to another app (which would then see them).
 */
export async function deleteApp(db: Db, name: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `update apps set deleted_at = now(), key_hash = sha256(gen_random_uuid()::text::bytea), check_url = null
      where name = $1 and deleted_at is null`,
    [name],
  );
  return (rowCount ?? 0) > 0;
}

/** The app a key belongs to, disabled or not (the authenticator tells the two refusals apart). */
export async function appByKeyHash(db: Db, keyHash: Buffer): Promise<{ name: string; readTopics: string[]; enabled: boolean } | null> {
  const { rows } = await db.query({
    name: "app_by_key",
    text: "select name, read_topics, enabled from apps where key_hash = $1 and deleted_at is null",
    values: [keyHash],
  });
  return rows[0] ? { name: rows[0].name, readTopics: rows[0].read_topics, enabled: rows[0].enabled } : null;
}
