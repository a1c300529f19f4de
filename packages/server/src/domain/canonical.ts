import { createHash } from "node:crypto";
import { RawJson } from "./rawJson.ts";

/** JSON with object keys sorted, so that equal content has one spelling. */
export function canonicalJson(value: unknown): string {
  if (value instanceof RawJson) return canonicalJson(JSON.parse(value.text));
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
    .join(",")}}`;
}

/** SHA-256 of the parts as given (null-separated), to tell a repeated message from a clash cheaply. */
export function contentHash(parts: ReadonlyArray<string | null>): Buffer {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part === null ? "\u0001" : part).update("\u0000");
  return hash.digest();
}
