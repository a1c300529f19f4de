import pg from "pg";
import { createTestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { api } from "./api.ts";

/** A service on a database of its own, a receiver whose paths in `down` answer 500, the admin's client and SQL on the database. */
export interface OutageWorld {
  service: RunningService;
  receiver: Receiver;
  admin: ReturnType<typeof api>;
  sql: pg.Pool;
  /** Receiver paths answered 500. */
  down: Set<string>;
  close(): Promise<void>;
}

export async function outageWorld(name: string, env: Record<string, string> = {}): Promise<OutageWorld> {
  const db = await createTestDatabase(name);
  const service = await startTestService(db.url, env);
  const down = new Set<string>();
  const receiver = await new Receiver((r) => (down.has(r.path) ? 500 : 200)).start();
  const sql = new pg.Pool({ connectionString: db.url, max: 3 });
  return {
    service,
    receiver,
    admin: api(service.url, ADMIN_KEY),
    sql,
    down,
    async close() {
      await service.close();
      await receiver.stop();
      await sql.end();
      await db.drop();
    },
  };
}
