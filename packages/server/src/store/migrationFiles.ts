import { readdirSync, readFileSync } from "node:fs";

export interface SqlFile {
  readonly file: string;
  readonly text: string;
}

/**
 * The migrations' SQL files (`src/store/migrations/`), sorted by name. From the sources they
 * are read from that folder; the build (scripts/build.mjs) replaces this module by one holding
 * their text, so the built service reads no files for them.
 */
export function sqlFiles(): SqlFile[] {
  const dir = new URL("./migrations/", import.meta.url);
  return readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .sort()
    .map((file) => ({ file, text: readFileSync(new URL(file, dir), "utf8") }));
}
