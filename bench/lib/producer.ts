import { Pool } from "undici";
import { payload, TOPIC } from "./payload.ts";

/** The load generator's HTTP client: undici, keep-alive, one connection per concurrent producer. */
export class Producer {
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;

  constructor(baseUrl: string, apiKey: string, connections: number) {
    this.pool = new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
    this.headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  }

  /** POST /v1/messages; resolves with the stored message's id once the service answered 201. */
  async publish(i: number, topic = TOPIC): Promise<string> {
    const response = await this.pool.request({
      method: "POST",
      path: "/v1/messages",
      headers: this.headers,
      body: JSON.stringify({ topic, key: `ord_${i}`, payload: payload(i) }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 201) throw new Error(`POST /v1/messages answered ${response.statusCode}: ${text.slice(0, 300)}`);
    // The id is the first field of the answer: no need to parse the whole message.
    const match = /"id":"([^"]+)"/.exec(text);
    if (!match) throw new Error(`no id in ${text.slice(0, 200)}`);
    return match[1]!;
  }

  /**
   * POST /v1/messages/batch with messages first … first+count-1. `keys`: message i gets key
   * `key_<i mod keys>` instead of one key each; `idPrefix`: message i gets the producer's id
   * `<idPrefix><i>` instead of one the service makes; `minimal`: asks for ids and outcomes only
   * (`Prefer: return=minimal`) instead of every stored message.
   */
  async publishBatch(
    first: number,
    count: number,
    { topic = TOPIC, keys, idPrefix, minimal = false }: { topic?: string; keys?: number; idPrefix?: string; minimal?: boolean } = {},
  ): Promise<void> {
    const key = (i: number) => (keys === undefined ? `ord_${i}` : `key_${i % keys}`);
    const messages = Array.from({ length: count }, (_, k) =>
      idPrefix === undefined
        ? { topic, key: key(first + k), payload: payload(first + k) }
        : { id: `${idPrefix}${first + k}`, topic, key: key(first + k), payload: payload(first + k) },
    );
    const response = await this.pool.request({
      method: "POST",
      path: "/v1/messages/batch",
      headers: minimal ? { ...this.headers, prefer: "return=minimal" } : this.headers,
      body: JSON.stringify({ messages }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 201) throw new Error(`POST /v1/messages/batch answered ${response.statusCode}: ${text.slice(0, 300)}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
