import type { FastifyInstance, FastifyRequest } from "fastify";
import { bracketsAtMost, MAX_PAYLOAD_DEPTH, mayHoldInexactNumber, mayHoldPoison, nestingAtMost, scanJson } from "../domain/jsonScan.ts";

/** The JSON text of each request's body, for the looks `inspectBody` takes on the message routes. */
const texts = new WeakMap<FastifyRequest, string>();

/**
 * Parses JSON bodies as Fastify does (prototype poisoning refused), keeping the text: the
 * message routes look at it once more, cheaply, for what JSON.parse hides (see inspectBody).
 */
export function useJsonBody(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    texts.set(request, body as string);
    parse(request, body as string, done);
  });
}

/** The body's length in characters (0 without one): what a request weighs while it waits. */
export const bodyLength = (request: FastifyRequest): number => texts.get(request)?.length ?? 0;

/** What the body's text tells beyond its parsed value. */
export interface BodyInspection {
  /** Some text may hold a NUL or a lone surrogate, or nest too deep: walk each message to name the field. */
  readonly walk: boolean;
  /** The exact payload text of message i (0 for a single message) where a number in it would not survive JSON.parse. */
  readonly exactPayloads: ReadonlyMap<number, string> | null;
}

const CLEAN: BodyInspection = { walk: false, exactPayloads: null };

/**
 * The fast path is a search for `\u`, a count of brackets and a regex for long or exponent
 * numbers; a body with more brackets than the depth limit (any batch of some size) gets a pass
 * that follows the nesting only, and one with such a number the full scan (depth, numbers, each
 * payload's exact text).
 */
export function inspectBody(request: FastifyRequest, batch: boolean): BodyInspection {
  const text = texts.get(request);
  return text === undefined ? CLEAN : inspectText(text, batch);
}

/** inspectBody of a body's text. */
export function inspectText(text: string, batch: boolean): BodyInspection {
  const poison = mayHoldPoison(text);
  // A message's payload nests one level below the body, a batch's three.
  const limit = MAX_PAYLOAD_DEPTH + (batch ? 3 : 1);
  // (A batch has more brackets than that: it goes to the one scan, which also finds numbers.)
  const inexact = mayHoldInexactNumber(text);
  if (!inexact && bracketsAtMost(text, limit)) return poison ? { walk: true, exactPayloads: null } : CLEAN;
  // A batch of some size: only its depth to check, unless it may hold an inexact number.
  if (!inexact) return { walk: poison || !nestingAtMost(text, limit), exactPayloads: null };
  const scan = scanJson(text, batch);
  return { walk: poison || scan.maxDepth > limit, exactPayloads: scan.inexactNumber ? scan.payloads : null };
}
