import type { IncomingMessage, ServerResponse } from "node:http";
import type { Receiver, ReceiverAnswer } from "./receiver.ts";

const MAX_BODY = 5 * 1024 * 1024;

function send(res: ServerResponse, answer: ReceiverAnswer): void {
  res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) req.destroy(new Error("body too large"));
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * For Node's `http` server and Express: `(req, res)`. The signature is over the raw body, so
 * mount it before `express.json()` (or behind `express.raw()`/`express.text()`, whose Buffer or
 * string `req.body` it uses).
 */
export function nodeHandler(receiver: Receiver): (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      let body: string;
      if (Buffer.isBuffer(req.body)) body = req.body.toString("utf8");
      else if (typeof req.body === "string") body = req.body;
      else if (req.body !== undefined && req.body !== null && req.readableEnded) {
        // Parsed already (express.json()): the raw bytes the signature covers are gone.
        send(res, { status: 500, body: { error: { code: "config", message: "mount the receiver before express.json(), or use express.raw()" } } });
        return;
      } else body = await readBody(req);
      send(res, await receiver.receive({ body, headers: req.headers }));
    })().catch((error: unknown) => {
      if (!res.headersSent) send(res, { status: 500, body: { error: { code: "internal", message: String((error as Error)?.message ?? error) } } });
    });
  };
}

/** The part of a Fastify instance the plugin uses. */
export interface FastifyLike {
  addContentTypeParser(
    type: string,
    options: { parseAs: "string" },
    parser: (request: unknown, body: string, done: (error: Error | null, body?: unknown) => void) => void,
  ): void;
  post(
    path: string,
    handler: (request: { body: unknown; headers: Record<string, string | string[] | undefined> }, reply: FastifyReplyLike) => Promise<unknown>,
  ): unknown;
}
export interface FastifyReplyLike {
  status(code: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(body: unknown): unknown;
}

/**
 * A Fastify plugin: `app.register(fastifyPlugin(receiver, "/webhooks/tidings"))`. It keeps the
 * body as raw text inside its own encapsulated context (the rest of the app still parses JSON).
 */
export function fastifyPlugin(receiver: Receiver, path: string): (instance: FastifyLike) => Promise<void> {
  return async (instance) => {
    instance.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => done(null, body));
    instance.post(path, async (request, reply) => {
      const answer = await receiver.receive({ body: typeof request.body === "string" ? request.body : "", headers: request.headers });
      return reply.status(answer.status).header("content-type", "application/json").send(JSON.stringify(answer.body));
    });
  };
}

/** For Hono: `app.post("/webhooks/tidings", honoHandler(receiver))`. */
export function honoHandler(receiver: Receiver): (c: { req: { raw: Request } }) => Promise<Response> {
  return (c) => receiver.fetch(c.req.raw);
}
