import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { signWebhook } from "./transports/signature.ts";

/**
 * `tidings listen`: a local receiver for trying Tidings out or watching what a subscription
 * sends. It prints each delivery, checks its Standard Webhooks signature when given the
 * subscription's secret (a bad one is answered 401, as a real receiver would), and answers the
 * rest with --status.
 */
export const LISTEN_USAGE = `usage: tidings listen [--port N] [--host H] [--secret whsec_…] [--status N] [--json]

  Receives deliveries and prints each: when, the message id, its topic, the signature, the body.

  --port N       where to listen (default 7401; 0: any free port)
  --host H       the address to listen on (default 127.0.0.1)
  --secret S     the subscription's signing secret: deliveries with a bad or stale signature
                 are answered 401 (env TIDINGS_LISTEN_SECRET)
  --status N     the status to answer good deliveries with (default 200; e.g. 500 to see retries)
  --json         one JSON object per delivery instead of a line`;

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

const cut = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

export async function runListen(argv: string[]): Promise<number> {
  const parse = () =>
    parseArgs({
      args: argv,
      options: {
        port: { type: "string", default: "7401" },
        host: { type: "string", default: "127.0.0.1" },
        secret: { type: "string" },
        status: { type: "string", default: "200" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  let options: ReturnType<typeof parse>;
  try {
    options = parse();
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${LISTEN_USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(LISTEN_USAGE);
    return 0;
  }
  const port = Number(options.port);
  const status = Number(options.status);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isInteger(status) || status < 200 || status > 599) {
    console.error(`--port must be 0-65535 and --status 200-599\n\n${LISTEN_USAGE}`);
    return 2;
  }
  const secret = options.secret ?? process.env.TIDINGS_LISTEN_SECRET;

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
