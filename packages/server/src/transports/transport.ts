import type { LeasedDelivery } from "../domain/delivery.ts";
import type { Endpoint } from "../domain/subscription.ts";

/** How one attempt went, as the dispatcher records it. */
export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  /** The receiver's Retry-After on 429/503, in ms. */
  retryAfterMs?: number;
  /** Cut short by shutdown: no attempt to record, the lease is given back. */
  aborted?: boolean;
}

/** What a transport is given for one attempt. */
export interface Outgoing {
  delivery: LeasedDelivery;
  /** The envelope, JSON: `{"id","topic","tag","key","payload","headers","createdAt"}`. */
  body: string;
  /** The subscription's signing secret (HTTP signs with it; brokers may carry the signature too). */
  secret: string;
  /** The subscription's name, sent as `tidings-subscription` (consumers report outcomes by it). */
  subscription?: string;
  /** Aborted at shutdown: the transport gives up at once and answers `aborted`. */
  signal?: AbortSignal | undefined;
  /** The attempt's W3C trace context (`traceparent`, `tracestate`): HTTP request headers, broker message headers. */
  trace?: Readonly<Record<string, string>> | undefined;
}

/**
 * Delivers to one kind of endpoint. `send` never throws: a refusal, a timeout or a broker
 * that is down is a failed attempt, retried on the subscription's schedule. It resolves ok
 * only when the receiver acknowledged durably (2xx, publisher confirm, PubAck, XADD reply).
 */
export interface Transport<E extends Endpoint = Endpoint> {
  send(endpoint: E, outgoing: Outgoing): Promise<SendResult>;
  close(): Promise<void>;
}

export type Transports = { [K in Endpoint["type"]]: Transport<Extract<Endpoint, { type: K }>> };

/** Sends through the transport of the endpoint's type. */
export function sendVia(transports: Transports, endpoint: Endpoint, outgoing: Outgoing): Promise<SendResult> {
  const transport = transports[endpoint.type] as Transport<Endpoint> | undefined;
  if (!transport) return Promise.resolve({ ok: false, statusCode: null, error: `no transport for endpoint type ${endpoint.type}` });
  const sending = transport.send(endpoint, outgoing);
  const signal = outgoing.signal;
  if (!signal || endpoint.type === "http") return sending; // HTTP watches the signal itself
  // A broker publish cannot be taken back; at shutdown stop waiting for it and give the lease back.
  return new Promise<SendResult>((resolve) => {
    const onAbort = () => resolve({ ok: false, statusCode: null, error: "aborted: the service is shutting down", aborted: true });
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    void sending.then((result) => {
      signal.removeEventListener("abort", onAbort);
      resolve(result);
    });
  });
}
