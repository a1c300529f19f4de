// The inventory service: its own database (stock and a journal of deductions), and a webhook
// receiver that deducts the stock of each paid order once, through the inbox.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createReceiver, Inbox, nodeHandler, type Executor } from "@tidings/sdk";
import { ORDER_PAID } from "./orderService.ts";

export const INVENTORY_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS stock (sku varchar(40) PRIMARY KEY, qty integer NOT NULL, initial integer NOT NULL)`,
  // One row per order whose stock was deducted: the primary key makes a second deduction impossible.
  `CREATE TABLE IF NOT EXISTS deductions (sn varchar(40) PRIMARY KEY, sku varchar(40) NOT NULL, qty integer NOT NULL, message_id varchar(200) NOT NULL)`,
];

export interface InventoryServer {
  readonly url: string;
  /** Deliveries received, how many were duplicates the inbox skipped, and messages of a tag it did not subscribe to (expected: none). */
  readonly stats: { calls: number; applied: number; duplicates: number; otherTags: number };
  /** Sets the subscription's signing secret (known once the subscription exists). */
  use(secret: string): void;
  close(): Promise<void>;
}

export async function startInventoryServer(db: Executor): Promise<InventoryServer> {
  const inbox = new Inbox({ consumer: "inventory" });
  const stats = { calls: 0, applied: 0, duplicates: 0, otherTags: 0 };
  let handler: ReturnType<typeof nodeHandler> | null = null;
  const server = createServer((req, res) => {
    stats.calls++;
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/order-paid`,
    stats,
    use(secret) {
      const receiver = createReceiver({
        secret,
        db,
        inbox,
        async handle(message, tx) {
          // The subscription takes ORDER-PAID only: the topic's other tags never come here.
          if (message.tag !== ORDER_PAID) {
            stats.otherTags++;
            return;
          }
          const { sn, sku, qty } = message.payload as { sn: string; sku: string; qty: number };
          await tx.query("INSERT INTO deductions (sn, sku, qty, message_id) VALUES ($1, $2, $3, $4)", [sn, sku, qty, message.id]);
          await tx.query("UPDATE stock SET qty = qty - $2 WHERE sku = $1", [sku, qty]);
        },
        onEvent(event) {
          if (event.type === "applied") stats.applied++;
          if (event.type === "duplicate") stats.duplicates++;
        },
      });
      handler = nodeHandler(receiver);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
