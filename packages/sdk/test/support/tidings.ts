import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { TidingsClient } from "../../src/index.ts";

export { ADMIN_KEY };

/** A Tidings service running in this process on its own database, with one producer app. */
export interface TestTidings {
  readonly url: string;
  /** The service's own database (tests that seed it directly with SQL). */
  readonly databaseUrl: string;
  readonly apiKey: string;
  /** A client with the app's key. */
  readonly client: TidingsClient;
  /** A client with the admin key. */
  readonly admin: TidingsClient;
  /** Creates a subscription; resolves to its signing secret. */
  subscribe(name: string, topic: string, url: string, retry?: { schedule?: string[]; maxAttempts?: number }, extra?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

async function post(url: string, key: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

export async function startTidings(label: string, env: Record<string, string> = {}): Promise<TestTidings> {
  const database: TestDatabase = await createTestDatabase(`${label}_svc`);
  const service = await startTestService(database.url, env);
  const app = await post(service.url, ADMIN_KEY, "/v1/apps", { name: `app-${randomBytes(3).toString("hex")}` });
  const apiKey = String(app.apiKey);
  return {
    url: service.url,
    databaseUrl: database.url,
    apiKey,
    client: new TidingsClient({ url: service.url, apiKey }),
    admin: new TidingsClient({ url: service.url, apiKey: ADMIN_KEY }),
    async subscribe(name, topic, url, retry, extra) {
      const sub = await post(service.url, ADMIN_KEY, "/v1/subscriptions", {
        name,
        topic,
        endpoint: { type: "http", url },
        ...(retry ? { retry } : {}),
        ...extra,
      });
      return String(sub.secret);
    },
    async close() {
      await service.close();
      await database.drop();
    },
  };
}
