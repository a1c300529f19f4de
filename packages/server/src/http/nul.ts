import type { FastifyRequest } from "fastify";

const hasNul = (value: unknown): boolean => (typeof value === "string" ? value.includes("\0") : Array.isArray(value) && value.some(hasNul));

/** The path parameter or query field whose value (or name) holds a NUL, as validation names fields. */
export function nulField(request: FastifyRequest): string {
  for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, unknown>)) {
    if (hasNul(value)) return `params.${name}`;
  }
  for (const [name, value] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    if (name.includes("\0")) return "querystring";
    if (hasNul(value)) return `querystring.${name}`;
  }
  return "url";
}
