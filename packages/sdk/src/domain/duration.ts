import { TidingsError } from "../errors.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration as the service's configuration writes it ("500ms", "15m", "2h", "7d"), or a
 * number of milliseconds; `field` names the option in the error.
 */
export function parseDuration(value: string | number, field: string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) throw new TidingsError("config", `${field} must be a duration such as "15m", got ${value}`, { field });
    return value;
  }
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) throw new TidingsError("config", `${field} must be a duration such as "15m" or "2h", got "${value}"`, { field });
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}
