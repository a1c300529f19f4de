import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The admin key: TIDINGS_ADMIN_KEY, else the one kept in the data folder, else a new one kept there. */
export async function resolveAdminKey(configured: string | null, dataDir: string): Promise<{ key: string; generated: boolean }> {
  if (configured) return { key: configured, generated: false };
  const file = join(dataDir, "admin-key");
  if (existsSync(file)) return { key: (await readFile(file, "utf8")).trim(), generated: false };
  await mkdir(dataDir, { recursive: true });
  const key = `tda_${randomBytes(24).toString("base64url")}`;
  await writeFile(file, `${key}\n`, { mode: 0o600, flag: "wx" }).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  return { key: (await readFile(file, "utf8")).trim(), generated: true };
}
