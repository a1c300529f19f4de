import { MAX_PAYLOAD_DEPTH } from "./jsonScan.ts";

/**
 * Checks of a message's content that the JSON schema cannot express and PostgreSQL would
 * otherwise refuse inside a statement shared with other messages: text with NUL or a lone
 * surrogate, nesting deeper than MAX_PAYLOAD_DEPTH. Each finding names the field.
 */
export interface Finding {
  field: string;
  message: string;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const fieldOf = (parent: string, key: string | number): string =>
  typeof key === "number" ? `${parent}[${key}]` : IDENTIFIER.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;

/** What is wrong with a string: a NUL, a lone surrogate, or nothing. */
export function badText(text: string): string | null {
  if (text.includes("\u0000")) return "contains a NUL character (\\u0000), which cannot be stored";
  if (!(text as unknown as { isWellFormed(): boolean }).isWellFormed()) return "contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode";
  return null;
}

/**
 * Walks a JSON value (iteratively: any depth) for bad text in strings and keys and for nesting
 * deeper than `maxDepth`; the first finding, with the path from `field` (`payload.a[3].b`).
 */
export function inspectValue(value: unknown, field: string, maxDepth = MAX_PAYLOAD_DEPTH): Finding | null {
  const stack: Array<{ value: unknown; field: string; depth: number }> = [{ value, field, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    const v = item.value;
    if (typeof v === "string") {
      const bad = badText(v);
      if (bad) return { field: item.field, message: `${item.field} ${bad}` };
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    const depth = item.depth + 1;
    if (depth > maxDepth) return { field: item.field, message: `${field} nests objects and arrays more than ${maxDepth} deep (at ${item.field})` };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], field: fieldOf(item.field, i), depth });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const at = fieldOf(item.field, key);
      const bad = badText(key);
      if (bad) return { field: at, message: `the key of ${at} ${bad}` };
      stack.push({ value: (v as Record<string, unknown>)[key], field: at, depth });
    }
  }
  return null;
}

/** The earliest deliverAt taken (earlier ones are refused rather than stored as a date PostgreSQL may not hold). */
export const MIN_DELIVER_AT_MS = 0;
/** The latest delay or deliverAt, and the longest checkAfter: a year and a day. */
export const MAX_AHEAD_MS = 366 * 86_400_000;

/** What is wrong with a deliverAt (ms since the epoch), or null. */
export function deliverAtProblem(ms: number, now: number): string | null {
  if (!Number.isFinite(ms)) return "is not a valid date-time";
  if (ms < MIN_DELIVER_AT_MS) return "is before 1970-01-01T00:00:00Z";
  if (ms > now + MAX_AHEAD_MS) return "is over a year away";
  return null;
}
