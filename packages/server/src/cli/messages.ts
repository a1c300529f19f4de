import { readFile } from "node:fs/promises";
import type { Static } from "@sinclair/typebox";
import type { Attempt as AttemptSchema, Message as MessageSchema } from "../http/schemas.ts";
import { withQuery } from "./client.ts";
import { type Api, printJson, UsageError } from "./context.ts";
import { fields, oneLine, orNone, table } from "./format.ts";
import { defined, json, pairs, wholeNumber } from "./values.ts";

/** `tidings send`, `get`, `list` and `resend`: messages through the API. */

/** As the API answers them (type-only imports: nothing of the service is loaded). */
export type Message = Static<typeof MessageSchema>;
type Attempt = Static<typeof AttemptSchema>;

const messagePath = (id: string): string => `/v1/messages/${encodeURIComponent(id)}`;

/** The payload: --data, --data-file, or standard input when it is not a terminal. */
async function payloadOf(options: { data?: string; dataFile?: string }): Promise<unknown> {
  if (options.data !== undefined && options.dataFile !== undefined) throw new UsageError("--data or --data-file, not both");
  if (options.data !== undefined) return json("--data", options.data);
  if (options.dataFile !== undefined) {
    let text: string;
    try {
      text = await readFile(options.dataFile, "utf8");
    } catch (error) {
      throw new UsageError(`--data-file: cannot read ${options.dataFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    return json("--data-file", text);
  }
  if (process.stdin.isTTY) throw new UsageError("give the payload: --data JSON, --data-file FILE, or JSON on standard input");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") throw new UsageError("standard input was empty: give the payload as JSON there, or --data");
  return json("standard input", text);
}

export interface SendOptions {
  data?: string;
  dataFile?: string;
  key?: string;
  id?: string;
  tag?: string;
  header?: string[];
  delay?: string;
  deliverAt?: string;
}

export async function send({ call, json }: Api, topic: string, options: SendOptions): Promise<void> {
  const body = defined({
    id: options.id,
    topic,
    tag: options.tag,
    key: options.key,
    payload: await payloadOf(options),
    headers: pairs("--header", options.header),
    delay: options.delay,
    deliverAt: options.deliverAt,
  });
  const answer = await call("POST", "/v1/messages", body);
  if (json) printJson(answer.body);
  else console.log(answer.body.id);
}

/** A delivery's last word: its status code and error, when it has one. */
const lastWord = (d: { lastStatus: number | null; lastError: string | null }): string =>
  [d.lastStatus === null ? null : String(d.lastStatus), d.lastError].filter((x) => x !== null).join(" ") || "-";

export async function get({ call, json }: Api, id: string): Promise<void> {
  const message = (await call("GET", messagePath(id))).body as unknown as Message;
  const attempts = ((await call("GET", `${messagePath(id)}/attempts`)).body.items ?? []) as Attempt[];
  if (json) {
    printJson({ ...message, attempts });
    return;
  }
  const lines = [
    `message ${message.id}`,
    fields([
      ["app", orNone(message.app)],
      ["topic", message.topic],
      ["tag", orNone(message.tag)],
      ["key", orNone(message.key)],
      ["state", message.state],
      ["created", message.createdAt],
      ["deliver at", message.deliverAt],
      [
        "headers",
        Object.keys(message.headers).length
          ? Object.entries(message.headers)
              .map(([k, v]) => `${k}=${v}`)
              .join(", ")
          : "-",
      ],
      ["payload", oneLine(message.payload, 200)],
    ]),
  ];
  const deliveries = message.deliveries ?? [];
  lines.push("deliveries");
  lines.push(
    deliveries.length
      ? table([
          ["SUBSCRIPTION", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST"],
          ...deliveries.map((d) => [d.subscription, d.state, String(d.attempts), orNone(d.nextAttemptAt), lastWord(d)]),
        ])
          .split("\n")
          .map((line) => `  ${line}`)
          .join("\n")
      : "  (none: no subscription takes it, or it is not committed)",
  );
  lines.push("attempts");
  lines.push(
    attempts.length
      ? table([
          ["AT", "SUBSCRIPTION", "#", "OUTCOME", "STATUS", "LATENCY", "ERROR"],
          ...attempts.map((a) => [a.at, a.subscription, String(a.attempt), a.outcome, orNone(a.statusCode), `${a.latencyMs} ms`, orNone(a.error)]),
        ])
          .split("\n")
          .map((line) => `  ${line}`)
          .join("\n")
      : "  (none yet)",
  );
  console.log(lines.join("\n"));
}

export interface ListOptions {
  topic?: string;
  messageKey?: string;
  tag?: string;
  app?: string;
  id?: string;
  state?: string;
  subscription?: string;
  deliveryState?: string;
  createdAfter?: string;
  createdBefore?: string;
  limit?: string;
  cursor?: string;
}

export async function list({ call, json }: Api, o: ListOptions): Promise<void> {
  wholeNumber("--limit", o.limit);
  const path = withQuery("/v1/messages", {
    id: o.id,
    topic: o.topic,
    key: o.messageKey,
    tag: o.tag,
    app: o.app,
    createdAfter: o.createdAfter,
    createdBefore: o.createdBefore,
    state: o.state,
    subscription: o.subscription,
    deliveryState: o.deliveryState,
    limit: o.limit,
    cursor: o.cursor,
  });
  const { body } = await call("GET", path);
  if (json) {
    printJson(body);
    return;
  }
  const items = body.items as Message[];
  if (items.length === 0) console.log("no messages");
  else {
    const rows = items.map((m) => [m.id, orNone(m.app), m.topic, orNone(m.key), m.state, m.createdAt, oneLine(m.payload, 40)]);
    console.log(table([["ID", "APP", "TOPIC", "KEY", "STATE", "CREATED", "PAYLOAD"], ...rows]));
  }
  if (body.nextCursor) console.log(`more: --cursor ${body.nextCursor}`);
}

export async function resend({ call, json }: Api, id: string, options: { subscription?: string }): Promise<void> {
  const { body } = await call("POST", `${messagePath(id)}/resend`, defined({ subscription: options.subscription }));
  if (json) printJson(body);
  else console.log(`${id}: ${body.resent} ${body.resent === 1 ? "delivery" : "deliveries"} sent again`);
}
