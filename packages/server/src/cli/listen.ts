import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { signWebhook } from "../transports/signature.ts";
import { UsageError } from "./context.ts";
import { cut } from "./format.ts";

/**
 * `tidings listen`: a local receiver for trying Tidings out or watching what a subscription
 * sends. It prints each delivery, checks its Standard Webhooks signature when given the
 * subscription's secret (a bad one is answered 401, as a real receiver would), and answers the
 * rest with --status.
 */

/** A delivery's body is read up to this; a larger one is answered 413. */
const MAX_BODY = 1024 * 1024;
/** A signature's timestamp may be this far from now, as Standard Webhooks receivers allow. */
const TOLERANCE_S = 300;

type Signature = "valid" | "invalid" | "unchecked";

/** Whether the headers carry a valid signature of `body` by `secret`, not older or newer than the tolerance. */
export function checkSignature(secret: string, headers: IncomingMessage["headers"], body: string, nowSeconds: number): boolean {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signatures !== "string") return false;
  const seconds = Number(timestamp);
  if (!Number.isInteger(seconds) || Math.abs(nowSeconds - seconds) > TOLERANCE_S) return false;
  const expected = Buffer.from(signWebhook(secret, id, seconds, body));
  return signatures.split(" ").some((given) => {
    const b = Buffer.from(given);
    return b.length === expected.length && timingSafeEqual(b, expected);
  });
}

export interface ListenOptions {
  port: string;
  host: string;
  secret?: string;
  status: string;
  json?: boolean;
}

export async function runListen(options: ListenOptions): Promise<number> {
  const port = Number(options.port);
  const status = Number(options.status);
  if (!/^\d+$/.test(options.port) || port > 65535 || !/^\d+$/.test(options.status) || status < 200 || status > 599) {
    throw new UsageError("--port must be 0-65535 and --status 200-599");
  }
  const secret = options.secret ?? process.env.TIDINGS_LISTEN_SECRET;
  // An empty one is a mistake (a variable that was not set), not "check nothing".
  if (secret !== undefined && !/^whsec_\S+$/.test(secret)) throw new UsageError("--secret must be the subscription's signing secret, whsec_…");

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () => {
      if (size > MAX_BODY) {
        res.writeHead(413).end();
        return;
      }
      const body = Buffer.concat(chunks).toString("utf8");
      const signature: Signature =
        secret === undefined ? "unchecked" : checkSignature(secret, req.headers, body, Math.floor(Date.now() / 1000)) ? "valid" : "invalid";
      let parsed: { id?: unknown; topic?: unknown; key?: unknown } = {};
      try {
        parsed = JSON.parse(body);
      } catch {
        // Printed as it came.
      }
      const id = String(req.headers["webhook-id"] ?? parsed.id ?? "-");
      const topic = typeof parsed.topic === "string" ? parsed.topic : "-";
      const answer = signature === "invalid" ? 401 : status;
      if (options.json) {
        console.log(
          JSON.stringify({ at: new Date().toISOString(), path: req.url, id, topic, key: parsed.key ?? null, signature, answered: answer, body: parsed }),
        );
      } else {
        console.log(`${new Date().toISOString().slice(11, 23)}  ${id}  ${topic}  signature ${signature}  → ${answer}  ${cut(body.replace(/\s+/g, " "), 300)}`);
      }
      res.writeHead(answer, { "content-type": "text/plain" }).end(answer < 300 ? "ok" : "refused");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  console.log(`Listening on http://${host}:${address.port}/ (${secret ? "checking signatures" : "signatures not checked: pass --secret"}); Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
