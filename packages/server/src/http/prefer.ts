/**
 * The value of one preference of an RFC 7240 `Prefer` header (`return=minimal`, `wait=10`),
 * among others, any case, quoted or not; null when the request does not state it.
 */
export function preference(prefer: string | string[] | undefined, name: "return" | "wait"): string | null {
  if (prefer === undefined) return null;
  const text = Array.isArray(prefer) ? prefer.join(",") : prefer;
  const match = new RegExp(`(?:^|[,;\\s])${name}\\s*=\\s*"?([^",;\\s]*)"?`, "i").exec(text);
  return match ? match[1]! : null;
}
