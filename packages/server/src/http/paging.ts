import { invalid } from "../domain/errors.ts";

/**
 * A list's `?limit=`: the default when absent, else a whole number from 1 to `max`, or a 400
 * naming `querystring.limit` (as the schemas name a limit that is not a number at all).
 */
export function pageLimit(given: string | undefined, defaultLimit: number, max: number): number {
  if (given === undefined) return defaultLimit;
  const limit = Number(given);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw invalid("querystring.limit", `limit must be from 1 to ${max}`);
  return limit;
}
