import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  id: string;
  attempt: number;
  at: number;
  headers: IncomingMessage["headers"];
  body: string;
  path: string;
  /** What the receiver answered. */
  status: number;
}

export type Behaviour = (r: Omit<Received, "status">, countForId: number) => { status: number; headers?: Record<string, string> } | number;

/** A real local HTTP endpoint that records what it is sent and answers as told. */
export class Receiver {
  readonly received: Received[] = [];
  readonly counts = new Map<string, number>();
  private server: Server | null = null;
  url = "";

  constructor(public behaviour: Behaviour = () => 200) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const r: Received = {
          id: String(req.headers["webhook-id"]),
          attempt: Number(req.headers["tidings-attempt"]),
          at: Date.now(),
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          path: req.url ?? "/",
          status: 0,
        };
        const n = (this.counts.get(r.id) ?? 0) + 1;
        this.counts.set(r.id, n);
        this.received.push(r);
        const answer = this.behaviour(r, n);
        const { status, headers } = typeof answer === "number" ? { status: answer, headers: {} } : answer;
        r.status = status;
        res.writeHead(status, headers).end(status < 300 ? "ok" : "nope");
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Distinct message ids answered with 2xx. */
  deliveredIds(): Set<string> {
    return new Set(this.received.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.id));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
