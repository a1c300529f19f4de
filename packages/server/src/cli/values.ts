import { parseDuration } from "../domain/duration.ts";
import { UsageError } from "./context.ts";

/** Option values as the API takes them; a value of the wrong form is bad usage naming its option. */

/** A whole number (`--limit 20`). */
export function wholeNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not ${JSON.stringify(value)}`);
  return Number(value);
}

/** A number (`--rate-limit 2.5`). */
export function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, not ${JSON.stringify(value)}`);
  return n;
}

/** JSON text (`--data '{"sn":1}'`). */
export function json(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${flag} is not JSON: ${(error as Error).message}`);
  }
}

/** `name=value` pairs (`--header a=1 --header b=2`) as an object. */
export function pairs(flag: string, given: string[] | undefined): Record<string, string> | undefined {
  if (given === undefined) return undefined;
  const map: Record<string, string> = {};
  for (const pair of given) {
    const at = pair.indexOf("=");
    if (at < 1) throw new UsageError(`${flag} takes name=value, not ${JSON.stringify(pair)}`);
    map[pair.slice(0, at).trim()] = pair.slice(at + 1);
  }
  return map;
}

/** A comma-separated list (`--tags a,b`). */
export const list = (value: string | undefined): string[] | undefined =>
  value === undefined
    ? undefined
    : value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");

/** A time as given (the service checks it), or a duration (`6h`) as that long before now. */
export function when(value: string | undefined, now = Date.now()): string | undefined {
  const ago = value === undefined ? undefined : parseDuration(value);
  return ago === undefined ? value : new Date(now - ago).toISOString();
}

/** A duration (`1s`) in milliseconds. */
export function duration(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag} must be a duration such as 500ms, 2s or 1m, not ${JSON.stringify(value)}`);
  return ms;
}

/** Leaves out the fields whose value is undefined (the API tells absent from null). */
export const defined = <T extends Record<string, unknown>>(fields: T): Partial<T> =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
