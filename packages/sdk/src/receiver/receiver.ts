import { Webhook } from "standardwebhooks";
import { parseEnvelope, type Envelope } from "../domain/envelope.ts";
import { TidingsError } from "../errors.ts";
import type { Executor } from "../executor/executor.ts";
import type { Inbox } from "../inbox/inbox.ts";
import { errorText, type OutcomeKind, type OutcomeReporter } from "../outcomes/outcomeReporter.ts";
import { consumerAttributes, inConsumerSpan } from "../tracing/otel.ts";

export interface ReceiverOptions {
  /** The subscription's signing secret (`whsec_...`), or several (rotation, several subscriptions). */
  secret: string | readonly string[];
  /** The consumer's database; each message is applied in a transaction of it. */
  db: Executor;
  inbox: Inbox;
  /** The business change for one message, in the inbox's transaction `tx`. */
  handle(message: Envelope, tx: Executor): Promise<unknown>;
  /** Told of each outcome (for logs and metrics); an exception thrown here is ignored. */
  onEvent?: (event: ReceiverEvent) => void;
  /**
   * Reports each message's outcome (applied, duplicate, failed) to the service, batched and off
   * the hot path: the delivery then shows it, and a message every consumer applied is completed.
   */
  outcomes?: OutcomeReporter;
  /** The subscription reported on when a delivery does not name it (`tidings-subscription`, sent by the service). */
  subscription?: string;
}

export type ReceiverEvent =
  | { type: "applied" | "duplicate"; message: Envelope }
  | { type: "rejected"; status: number; reason: string }
  | { type: "failed"; message: Envelope; error: unknown };

/** A request as every framework can give it: the raw body text and the headers. */
export interface RawDelivery {
  body: string;
  headers: Record<string, string | string[] | undefined> | Headers;
}

/** What to answer. */
export interface ReceiverAnswer {
  status: number;
  body: { status: "applied" | "duplicate" } | { error: { code: string; message: string } };
}

export interface Receiver {
  /** The framework-free core: verify, parse, apply through the inbox, and say what to answer. */
  receive(delivery: RawDelivery): Promise<ReceiverAnswer>;
  /** A web-standard handler: Hono, Bun, Deno, Next.js route handlers, `fetch`-style servers. */
  fetch(request: Request): Promise<Response>;
}

function headerRecord(headers: RawDelivery["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      out[name.toLowerCase()] = value;
    });
    return out;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

const reject = (status: number, code: string, message: string): ReceiverAnswer => ({ status, body: { error: { code, message } } });

/**
 * A webhook receiver for Tidings deliveries. It verifies the Standard Webhooks signature and
 * timestamp (5 minutes' tolerance, the `standardwebhooks` library's), parses the envelope, runs
 * `handle` through the inbox, and answers 2xx only after the business transaction committed:
 * 200 applied or duplicate; 401 bad signature; 400 malformed; 500 when `handle` threw (the
 * service then retries). Mount it with `nodeHandler`, `fastifyPlugin`, `honoHandler`, or `fetch`.
 */
export function createReceiver(options: ReceiverOptions): Receiver {
  const secrets = typeof options.secret === "string" ? [options.secret] : [...options.secret];
  if (secrets.length === 0 || secrets.some((s) => !s)) throw new TidingsError("config", "the receiver needs the subscription's signing secret");
  const verifiers = secrets.map((s) => new Webhook(s));
  const emit = (event: ReceiverEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // observers never break the receiver
    }
  };

  async function receive(delivery: RawDelivery): Promise<ReceiverAnswer> {
    const headers = headerRecord(delivery.headers);
    if (!headers["webhook-id"] || !headers["webhook-timestamp"] || !headers["webhook-signature"]) {
      emit({ type: "rejected", status: 401, reason: "missing webhook headers" });
      return reject(401, "invalid_signature", "webhook-id, webhook-timestamp and webhook-signature are required");
    }
    let verified = false;
    let why = "";
    for (const verifier of verifiers) {
      try {
        verifier.verify(delivery.body, headers, { jsonParse: false });
        verified = true;
        break;
      } catch (error) {
        why = (error as Error).message;
      }
    }
    if (!verified) {
      emit({ type: "rejected", status: 401, reason: why });
      return reject(401, "invalid_signature", why || "the signature does not match");
    }
    let message: Envelope;
    try {
      message = parseEnvelope(delivery.body);
    } catch (error) {
      emit({ type: "rejected", status: 400, reason: (error as Error).message });
      return reject(400, "invalid_message", (error as Error).message);
    }
    if (message.id !== headers["webhook-id"]) {
      emit({ type: "rejected", status: 400, reason: "id mismatch" });
      return reject(400, "invalid_message", "the body's id is not the webhook-id");
    }
    const subscription = headers["tidings-subscription"] || options.subscription;
    const report = (outcome: OutcomeKind, error?: unknown) => {
      if (options.outcomes && subscription) {
        options.outcomes.report({ subscription, messageId: message.id, outcome, ...(error === undefined ? {} : { error: errorText(error) }) });
      }
    };
    try {
      const outcome = await inConsumerSpan(
        `process ${message.topic}`,
        headers,
        consumerAttributes(message, subscription, headers["tidings-attempt"]),
        () => options.inbox.handle(options.db, message, (tx) => options.handle(message, tx)),
        (o) => o.status,
      );
      emit({ type: outcome.status, message });
      report(outcome.status);
      return { status: 200, body: { status: outcome.status } };
    } catch (error) {
      emit({ type: "failed", message, error });
      report("failed", error);
      return reject(500, "handler_failed", error instanceof Error ? error.message.slice(0, 500) : "the handler failed");
    }
  }

  return {
    receive,
    async fetch(request: Request): Promise<Response> {
      if (request.method !== "POST") return Response.json(reject(405, "method_not_allowed", "use POST").body, { status: 405 });
      const answer = await receive({ body: await request.text(), headers: request.headers });
      return Response.json(answer.body, { status: answer.status });
    },
  };
}
