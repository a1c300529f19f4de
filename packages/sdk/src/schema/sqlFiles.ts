import { readdirSync, readFileSync } from "node:fs";

export interface SqlFile {
  readonly file: string;
  readonly text: string;
}

/**
 * The SQL files of one dialect's folder (`sql/<dialect>/`), sorted by name. From the sources
 * they are read from the package's `sql/` folder; the build (scripts/build.mjs) replaces this
 * module by one holding their text, so the built SDK, and a program that bundles it, reads no
 * files and needs none beside it.
 */
export function sqlFiles(folder: string): SqlFile[] {
  const dir = new URL(`../../sql/${folder}/`, import.meta.url);
  return readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .sort()
    .map((file) => ({ file, text: readFileSync(new URL(file, dir), "utf8") }));
}
