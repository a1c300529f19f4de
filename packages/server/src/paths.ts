import { fileURLToPath } from "node:url";

/**
 * A file or folder of the server package, by its path from the package root. This module sits
 * one level below the root both as source (src/paths.ts) and bundled (dist/tidings.mjs), so the
 * same URL works for both.
 */
export function serverFile(path: string): string {
  return fileURLToPath(new URL(`../${path}`, import.meta.url));
}
