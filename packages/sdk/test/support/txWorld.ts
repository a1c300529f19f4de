// A Tidings service with a producer app whose check URL is served from this process, and a
// subscriber that records what is delivered: the world the transactional-message tests run in.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { connect, TidingsClient, type CheckBackHandler, type MessageInfo } from "../../src/index.ts";

export interface TxWorld {
  readonly url: string;
  readonly apiKey: string;
  /** The app's check-back signing secret. */
  readonly secret: string;
  /** A client with the app's key and secret. */
  readonly tidings: TidingsClient;
  readonly admin: TidingsClient;
  /** Records every delivery of `topic` (by webhook-id: the full id, `<app>/<id>`). */
  readonly subscriber: Receiver;
  /** The producer app's name. */
  readonly app: string;
  /** The full id of the app's message `id`: what receivers and the admin know it by. */
  full(id: string): string;
  /** Deliveries the subscriber got of the app's message `id` (undefined: none). */
  deliveries(id: string): number | undefined;
  /** The app's ids the subscriber got, as the app knows them. */
  deliveredIds(): string[];
  readonly topic: string;
  /** The check URL's handler from now on (null: 503). */
  useHandler(handler: CheckBackHandler | null): void;
  /** Check-back requests the check URL received (message id and arrival time), in order. */
  readonly checkRequests: Array<{ id: string; at: number }>;
  /** Every message whose id starts with `prefix`, by id. */
  messages(prefix: string): Promise<Map<string, MessageInfo>>;
  /** The check context the service stored with the app's message `id` (null: none; undefined: no such message). */
  storedCheckContext(id: string): Promise<string | null | undefined>;
  close(): Promise<void>;
}

export interface TxWorldOptions {
  /** Service settings: TIDINGS_CHECK_INTERVAL, TIDINGS_CHECK_LIMIT, TIDINGS_POLL_INTERVAL... */
  env?: Record<string, string>;
}

export async function startTxWorld(label: string, options: TxWorldOptions = {}): Promise<TxWorld> {
  const database: TestDatabase = await createTestDatabase(`${label}_svc`);
  let service: RunningService | null = null;
  let checkServer: Server | null = null;
  let subscriber: Receiver | null = null;
  try {
    service = await startTestService(database.url, {
      TIDINGS_POLL_INTERVAL: "50ms",
      TIDINGS_CHECK_INTERVAL: "200ms",
      TIDINGS_CHECK_LIMIT: "50",
      ...options.env,
    });
    let handler: CheckBackHandler | null = null;
    const checkRequests: Array<{ id: string; at: number }> = [];
    checkServer = createServer((req: IncomingMessage, res: ServerResponse) => {
      checkRequests.push({ id: String(req.headers["webhook-id"]), at: Date.now() });
      if (handler) handler.node(req, res);
      else res.writeHead(503).end();
    });
    await new Promise<void>((resolve) => checkServer!.listen(0, "127.0.0.1", resolve));
    const checkUrl = `http://127.0.0.1:${(checkServer.address() as AddressInfo).port}/tidings/check`;
    subscriber = await new Receiver().start();
    const admin = new TidingsClient({ url: service.url, apiKey: ADMIN_KEY });
    const app = await admin.apps.create({ name: `app-${randomBytes(3).toString("hex")}`, checkUrl });
    const topic = `${label.replace(/[^a-z0-9]/g, "")}.paid`;
    const created = await fetch(`${service.url}/v1/subscriptions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "subscriber", topic, endpoint: { type: "http", url: `${subscriber.url}/hook` } }),
    });
    if (!created.ok) throw new Error(`subscription: HTTP ${created.status} ${await created.text()}`);
    const tidings = new TidingsClient({ url: service.url, apiKey: app.apiKey, secret: app.secret });
    const runningService = service;
    const runningCheckServer = checkServer;
    const runningSubscriber = subscriber;
    const full = (id: string) => `${app.name}/${id}`;
    return {
      app: app.name,
      full,
      deliveries: (id) => runningSubscriber.counts.get(full(id)),
      deliveredIds: () => [...runningSubscriber.counts.keys()].filter((id) => id.startsWith(`${app.name}/`)).map((id) => id.slice(app.name.length + 1)),
      url: service.url,
      apiKey: app.apiKey,
      secret: app.secret,
      tidings,
      admin,
      subscriber,
      topic,
      checkRequests,
      useHandler: (h) => {
        handler = h;
      },
      async messages(prefix) {
        const out = new Map<string, MessageInfo>();
        // The service's ids are listed newest first; filter by prefix here.
        for await (const m of admin.messages.listAll({ topic, limit: 1000 })) if (m.id.startsWith(prefix)) out.set(m.id, m);
        return out;
      },
      async storedCheckContext(id) {
        const service = await connect(database.url, 1);
        try {
          const rows = await service.db.query<{ check_context: string | null }>("SELECT check_context FROM messages WHERE id = $1", [full(id)]);
          return rows[0]?.check_context;
        } finally {
          await service.close();
        }
      },
      async close() {
        await runningService.close();
        runningCheckServer.closeAllConnections();
        await new Promise<void>((resolve) => runningCheckServer.close(() => resolve()));
        await runningSubscriber.stop();
        await database.drop();
      },
    };
  } catch (error) {
    await service?.close().catch(() => undefined);
    checkServer?.close();
    await subscriber?.stop().catch(() => undefined);
    await database.drop().catch(() => undefined);
    throw error;
  }
}
