import { TidingsError } from "../errors.ts";

/** A message as a consumer sees it: the body of a delivery, or an item of the query API. */
export interface Envelope {
  /**
   * The full id, unique across producer apps and equal to `webhook-id`: `<app>/<id>` for an app's
   * message (its producer knows it as `<id>`), the bare id for a message the admin sent.
   */
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
}

function fail(field: string, message: string): never {
  throw new TidingsError("invalid_message", message, { field });
}

/** Parses and checks a delivery body: `{"id","topic","tag","key","payload","headers","createdAt"}`. */
export function parseEnvelope(body: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    fail("body", "the body is not JSON");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) fail("body", "the body is not a JSON object");
  const v = value as Record<string, unknown>;
  if (typeof v.id !== "string" || !v.id) fail("id", "id must be a non-empty string");
  if (typeof v.topic !== "string" || !v.topic) fail("topic", "topic must be a non-empty string");
  if (v.tag != null && typeof v.tag !== "string") fail("tag", "tag must be a string or null");
  if (v.key != null && typeof v.key !== "string") fail("key", "key must be a string or null");
  if (!("payload" in v)) fail("payload", "payload is required");
  const headers = v.headers ?? {};
  if (typeof headers !== "object" || Array.isArray(headers)) fail("headers", "headers must be an object");
  return {
    id: v.id,
    topic: v.topic,
    tag: (v.tag as string | null | undefined) ?? null,
    key: (v.key as string | null | undefined) ?? null,
    payload: v.payload,
    headers: headers as Record<string, string>,
    createdAt: typeof v.createdAt === "string" ? v.createdAt : "",
  };
}

/**
 * The full id of a message as the query API answers it (`id` is the producer's own, `app` beside
 * it): what deliveries carry as `webhook-id` and the envelope's `id`, and what the inbox records.
 */
export const fullIdOf = (m: { id: string; app: string | null }): string => (m.app === null ? m.id : `${m.app}/${m.id}`);
