import { resolveMessage, type OutgoingMessage, type ResolvedMessage } from "../domain/message.ts";
import { call, resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from "./http.ts";

/** A delivery of a message to one subscription, as the service reports it. */
export interface DeliveryInfo {
  subscription: string;
  state: "pending" | "delivered" | "dead" | string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  deadAt: string | null;
  deadReason: string | null;
}

/** A stored message, as the query API returns it. */
export interface MessageInfo {
  id: string;
  app: string | null;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  state: "prepared" | "committed" | "rolled_back" | string;
  deliverAt: string;
  createdAt: string;
  committedAt: string | null;
  rolledBackAt: string | null;
  deliveries?: DeliveryInfo[];
}

export interface ListMessagesQuery {
  key?: string;
  topic?: string;
  state?: "prepared" | "committed" | "rolled_back";
  /** 1..1000; the service's default is 50. */
  limit?: number;
  cursor?: string;
}

export interface MessagePage {
  items: MessageInfo[];
  nextCursor: string | null;
}

/** What the send API takes: an OutgoingMessage already resolved (the relay sends these). */
export function toWire(m: ResolvedMessage): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    id: m.id,
    topic: m.topic,
    tag: m.tag,
    key: m.key,
    payload: JSON.parse(m.payloadJson) as unknown,
    headers: JSON.parse(m.headersJson) as unknown,
  };
  if (m.deliverAt) wire.deliverAt = m.deliverAt.toISOString();
  return wire;
}

/** The messages part of the HTTP API: send, and the reconciliation queries. */
export class MessagesApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Sends one message; idempotent by id (generated when absent), so network errors are retried. */
  send(message: OutgoingMessage): Promise<MessageInfo> {
    return call<MessageInfo>(this.o, "POST", "/v1/messages", toWire(resolveMessage(message)), { idempotent: true });
  }

  /** Sends up to 1000 messages, all or nothing. */
  async sendBatch(messages: readonly OutgoingMessage[]): Promise<MessageInfo[]> {
    return this.sendResolved(messages.map((m, i) => resolveMessage(m, Date.now(), `messages[${i}].`)));
  }

  /** Sends messages already resolved (the outbox relay's rows), all or nothing. */
  async sendResolved(messages: readonly ResolvedMessage[], options: { retry?: boolean } = {}): Promise<MessageInfo[]> {
    const body = { messages: messages.map(toWire) };
    const answer = await call<{ items: MessageInfo[] }>(this.o, "POST", "/v1/messages/batch", body, { idempotent: options.retry ?? true });
    return answer.items;
  }

  /** A message and its deliveries, or null when there is none with this id (reconciliation by id). */
  get(id: string): Promise<MessageInfo | null> {
    return call<MessageInfo | null>(this.o, "GET", `/v1/messages/${encodeURIComponent(id)}`, undefined, { idempotent: true, notFoundIsNull: true });
  }

  /** Messages by business key and/or topic, newest first, one page (reconciliation by key). */
  list(query: ListMessagesQuery = {}): Promise<MessagePage> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
    const qs = params.toString();
    return call<MessagePage>(this.o, "GET", `/v1/messages${qs ? `?${qs}` : ""}`, undefined, { idempotent: true });
  }

  /** Every page of `list`, as an async iterator. */
  async *listAll(query: Omit<ListMessagesQuery, "cursor"> = {}): AsyncGenerator<MessageInfo> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...query, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
}

/** A client of the Tidings service. */
export class TidingsClient {
  readonly messages: MessagesApi;
  private readonly options: ResolvedHttpOptions;

  constructor(options: HttpOptions) {
    this.options = resolveHttpOptions(options);
    this.messages = new MessagesApi(this.options);
  }

  /** The service's base URL. */
  get url(): string {
    return this.options.baseUrl;
  }
}
