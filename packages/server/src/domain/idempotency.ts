import { canonicalJson, contentHash } from "./canonical.ts";
import type { MessageContent } from "./message.ts";

/**
 * A producer may send a message again under its id (a retry after a lost reply, a relay that
 * restarted): the same id with the same content (`MessageContent`) is the same message,
 * answered as stored; the same id with other content is a clash.
 */

/** Content with the hash it was stored or sent with (null for a generated id: never hashed). */
export interface HashedContent extends MessageContent {
  contentHash: Buffer | null;
}

/**
 * The hash of a message's content as sent, the payload and headers as their JSON text: equal
 * hashes are equal content; a repeat spelt otherwise (keys in another order) hashes otherwise
 * and is settled by sameMessage's exact comparison.
 */
export const contentHashOf = (m: Omit<MessageContent, "payload" | "headers">, payloadJson: string, headersJson: string): Buffer =>
  contentHash([m.app, m.topic, m.tag, m.key, payloadJson, headersJson]);

/**
 * Whether `incoming`, sent under the id of `stored`, is the same message. Equal hashes settle it
 * at once (the common repeat: the same request again); otherwise the content is compared with
 * object keys in one order.
 */
export function sameMessage(stored: HashedContent, incoming: HashedContent): boolean {
  if (stored.contentHash !== null && incoming.contentHash !== null && stored.contentHash.equals(incoming.contentHash)) return true;
  return (
    stored.app === incoming.app &&
    stored.topic === incoming.topic &&
    stored.tag === incoming.tag &&
    stored.key === incoming.key &&
    canonicalJson(stored.payload) === canonicalJson(incoming.payload) &&
    canonicalJson(stored.headers) === canonicalJson(incoming.headers)
  );
}
