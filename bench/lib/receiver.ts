import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The local webhook endpoint of the deliver, latency and backlog workloads: answers 200 at
 * once (no signature check, no body parsing) and counts what it got. Runs in the runner.
 */
export class Receiver {
  private server: Server | null = null;
  /** Requests answered. */
  received = 0;
  /** Distinct webhook-ids seen, when tracking is on (duplicates are redeliveries). */
  readonly seen = new Set<string>();
  /** Arrival time (performance.now()) per webhook-id, for the latency workload. */
  readonly arrivals = new Map<string, number>();
  trackIds = true;
  trackArrivals = false;
  url = "";
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const at = performance.now();
      const id = req.headers["webhook-id"];
      if (typeof id === "string") {
        if (this.trackArrivals && !this.arrivals.has(id)) this.arrivals.set(id, at);
        if (this.trackIds) this.seen.add(id);
      }
      this.received++;
      // The body is not needed: answer at once, drain what arrives.
      req.resume();
      res.writeHead(200, { "content-length": "2" }).end("ok");
      this.check();
    });
    this.server.keepAliveTimeout = 60_000;
    this.server.headersTimeout = 65_000;
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this;
  }

  /** Distinct ids when tracking, else requests. */
  get count(): number {
    return this.trackIds ? this.seen.size : this.received;
  }

  private check(): void {
    if (this.waiters.length === 0) return;
    const n = this.count;
    this.waiters = this.waiters.filter((w) => {
      if (n >= w.count) w.resolve();
      return n < w.count;
    });
  }

  /** Resolves when `count` deliveries arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs: number): Promise<void> {
    if (this.count >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver got ${this.count} of ${count} deliveries in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  reset(): void {
    this.received = 0;
    this.seen.clear();
    this.arrivals.clear();
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
