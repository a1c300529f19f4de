import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type FakeBehaviour = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/** A stand-in for the service's HTTP API that answers as a test tells it (hang, fail, drop the reply). */
export class FakeService {
  readonly requests: Array<{ path: string; body: string }> = [];
  /** Relay heartbeats: answered 204 like the service does, kept apart from the requests the test's behaviour answers. */
  readonly heartbeats: Array<Record<string, unknown>> = [];
  private server: Server | null = null;
  url = "";

  constructor(public behaviour: FakeBehaviour) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (req.url === "/v1/relays/heartbeat") {
          this.heartbeats.push(JSON.parse(body) as Record<string, unknown>);
          res.writeHead(204).end();
          return;
        }
        this.requests.push({ path: req.url ?? "/", body });
        this.behaviour(req, body, res);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Message ids of every batch request received. */
  batchIds(): string[] {
    return this.requests
      .filter((r) => r.path === "/v1/messages/batch")
      .flatMap((r) => (JSON.parse(r.body) as { messages: Array<{ id: string }> }).messages.map((m) => m.id));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** Answers a batch like the service does: 201 with the items. */
export function acceptBatch(_req: IncomingMessage, body: string, res: ServerResponse): void {
  const { messages } = JSON.parse(body) as { messages: unknown[] };
  res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ items: messages }));
}
