import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import Fastify from "fastify";
import type { RouteEntry } from "../src/http/access.ts";
import { requireDeclaredAccess } from "../src/http/access.ts";
import { ConfigError, loadConfig } from "../src/runtime/config.ts";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request with the path sent exactly as written (escapes, doubled slashes, absolute form). */
function request(baseUrl: string, method: string, path: string, headers: Record<string, string> = {}, body?: string, agent?: http.Agent): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path, headers, agent }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Bytes written on a bare socket, and what came back before the server closed it. */
function rawExchange(baseUrl: string, bytes: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
    let out = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms; got ${JSON.stringify(out)}`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      out += chunk;
      const head = out.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(out.slice(0, head));
      // A whole answer is in: stop here (some answers keep the connection open).
      if (head >= 0 && length && Buffer.byteLength(out.slice(head + 4)) >= Number(length[1])) socket.end();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      const head = out.indexOf("\r\n\r\n");
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0), body: head >= 0 ? out.slice(head + 4) : "" });
    });
  });
}

/** Asserts an error answer is `{"error":{"code","message","field"?}}` and returns its error. */
function ourShape(text: string, what: string): { code: string; message: string; field?: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: the answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } }).error;
  assert.ok(error && typeof error.code === "string" && typeof error.message === "string", `${what}: not our error shape: ${text.slice(0, 200)}`);
  assert.deepEqual(Object.keys(body as object), ["error"], `${what}: ${text.slice(0, 200)}`);
  if (error.field !== undefined) assert.equal(typeof error.field, "string", what);
  return error as { code: string; message: string; field?: string };
}

const pct = (c: string, upper: boolean) => {
  const hex = c.charCodeAt(0).toString(16).padStart(2, "0");
  return `%${upper ? hex.toUpperCase() : hex.toLowerCase()}`;
};

/** A route's URL with sample values for its parameters (`:name`, `:id`, `*`). */
function samplePath(url: string, encodeParams: (value: string) => string = (v) => v): string {
  return url
    .split("/")
    .map((segment) => {
      if (segment.startsWith(":")) return encodeParams(segment === ":id" ? "1" : "probe");
      if (segment === "*") return encodeParams("index.html");
      return segment;
    })
    .join("/");
}

/**
 * The spellings of a route's path a client can send: as written; each letter of the first
 * segment (the `/v1` prefix) percent-encoded, in upper- and lower-case hex, and all of them; a
 * parameter percent-encoded, or holding an escaped slash; doubled and trailing slashes; an
 * escaped slash between segments; dot segments; the absolute form; an empty query.
 */
function spellings(url: string, origin: string): string[] {
  const plain = samplePath(url);
  const out = new Set<string>([plain, `${plain}?`, `${origin}${plain}`]);
  const segments = plain.split("/");
  const first = segments[1] ?? "";
  for (const upper of [true, false]) {
    for (let i = 0; i < first.length; i++) {
      out.add(["", first.slice(0, i) + pct(first[i]!, upper) + first.slice(i + 1), ...segments.slice(2)].join("/"));
    }
    if (first) out.add(["", [...first].map((c) => pct(c, upper)).join(""), ...segments.slice(2)].join("/"));
    if (/[:*]/.test(url)) {
      out.add(samplePath(url, (v) => pct(v[0]!, upper) + v.slice(1)));
      out.add(samplePath(url, (v) => `${v}${upper ? "%2F" : "%2f"}x`));
    }
    if (segments.length > 2) out.add(`/${first}${upper ? "%2F" : "%2f"}${segments.slice(2).join("/")}`);
  }
  out.add(`/${plain}`);
  if (segments.length > 2) {
    out.add(`/${first}/${segments.slice(2).join("/")}`.replace(`/${first}/`, `/${first}//`));
    out.add(`/${first}/./${segments.slice(2).join("/")}`);
    out.add(`/${first}/x/../${segments.slice(2).join("/")}`);
  }
  if (plain !== "/") out.add(`${plain}/`);
  return [...out];
}

describe("the HTTP edge", () => {
  let database: TestDatabase;
  /** Behind a trusted proxy (loopback): each call may say which client address it is from. */
  let service: RunningService;
  let receiver: Receiver;
  let appKey: string;
  let admin: ReturnType<typeof api>;

  before(async () => {
    database = await createTestDatabase("edge");
    service = await startTestService(database.url, { TIDINGS_TRUST_PROXY: "127.0.0.1" });
    receiver = await new Receiver().start();
    admin = api(service.url, ADMIN_KEY);
    const created = await admin.post("/v1/apps", { name: "shop" });
    assert.equal(created.status, 201);
    appKey = created.body.apiKey;
  });

  after(async () => {
    await service?.close();
    await receiver?.stop();
    await database?.drop();
  });

  describe("authorization is decided on the route the router matched", () => {
    test("every route, every spelling the router accepts, every principal: only the allowed one gets through", async () => {
      const routes = service.routes;
      assert.ok(routes.length >= 30, `routes collected: ${routes.length}`);
      const publicRoutes = routes
        .filter((r) => r.auth === "public")
        .map((r) => `${r.method} ${r.url}`)
        .sort();
      assert.deepEqual(
        publicRoutes.filter((r) => !r.startsWith("HEAD ")),
        ["GET /", "GET /console", "GET /console/*", "GET /healthz", "GET /metrics", "GET /openapi.json", "GET /readyz", "POST /v1/session"],
        "the public routes are exactly these: a new one must be added here on purpose",
      );
      for (const r of ["POST /v1/apps", "GET /v1/apps/:name", "POST /v1/messages", "GET /v1/messages/:id", "GET /v1/stats", "DELETE /v1/session"]) {
        assert.ok(
          routes.some((e) => `${e.method} ${e.url}` === r),
          `${r} is collected`,
        );
      }

      const principals = [
        { name: "no key", key: null as string | null, kind: "none" },
        { name: "a wrong key", key: "tdk_not-a-key-0123456789abcdef", kind: "none" },
        { name: "an app key", key: appKey, kind: "app" },
        { name: "the admin key", key: ADMIN_KEY, kind: "admin" },
      ];
      const allowed = (route: RouteEntry, kind: string) => route.auth === "public" || kind === "admin" || (route.auth === "app" && kind === "app");

      // A HEAD answer has no body to tell the router's 404 from a handler's: the GET's tells.
      const ordered = routes;
      const routerMisses = new Set<string>();
      const failures: string[] = [];
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      let clientNo = 0;
      let calls = 0;
      let routedSpellings = 0;
      const phases: Array<Array<() => Promise<void>>> = [[], []];
      for (const route of ordered) {
        const jobs = phases[route.method === "HEAD" ? 1 : 0]!;
        for (const path of spellings(route.url, service.url)) {
          for (const principal of principals) {
            jobs.push(async () => {
              clientNo++;
              // A client address per call: the limit on failed keys is per address and must not answer here.
              const headers: Record<string, string> = { "x-forwarded-for": `10.${(clientNo >> 16) & 255}.${(clientNo >> 8) & 255}.${clientNo & 255}` };
              if (principal.key) headers.authorization = `Bearer ${principal.key}`;
              const hasBody = route.method === "POST" || route.method === "PATCH" || route.method === "PUT";
              if (hasBody) headers["content-type"] = "application/json";
              const answer = await request(service.url, route.method, path, headers, hasBody ? "{}" : undefined, agent);
              calls++;
              const what = `${route.method} ${path} (route ${route.url}, ${route.auth}) with ${principal.name} → ${answer.status} ${answer.text.slice(0, 160)}`;
              if (answer.status >= 500) failures.push(`5xx: ${what}`);
              let routerMiss = false;
              if (answer.status >= 400 && route.method !== "HEAD") {
                try {
                  const error = ourShape(answer.text, what);
                  routerMiss = answer.status === 404 && error.message.startsWith("no route ");
                } catch (error) {
                  failures.push((error as Error).message);
                }
              }
              if (route.method === "GET" && routerMiss) routerMisses.add(path);
              if (route.method === "HEAD" && answer.status === 404) routerMiss = routerMisses.has(path);
              if (principal.kind === "admin" && !routerMiss) routedSpellings++;
              if (allowed(route, principal.kind)) return;
              // Not allowed: refused for want of a principal (401/403), or never routed at all.
              if (answer.status >= 200 && answer.status < 400) failures.push(`got through: ${what}`);
              else if (answer.status !== 401 && answer.status !== 403 && !routerMiss) failures.push(`not refused by authorization: ${what}`);
              if (route.auth === "admin" && !routerMiss && answer.status !== 401 && answer.status !== 403) failures.push(`admin route not 401/403: ${what}`);
            });
          }
        }
      }
      // 8 calls at a time; the GETs (whose router misses judge the HEADs) all done before the HEADs.
      const started = Date.now();
      for (const jobs of phases) {
        let next = 0;
        const worker = async () => {
          while (next < jobs.length) await jobs[next++]!();
        };
        await Promise.all(Array.from({ length: 8 }, worker));
      }
      agent.destroy();
      console.log(`route matrix: ${routes.length} routes, ${calls} calls, ${routedSpellings} spellings routed for the admin, ${Date.now() - started} ms`);
      assert.deepEqual(failures.slice(0, 40), [], `${failures.length} failures`);
      // The matrix reaches the handlers through the odd spellings (else it would prove nothing).
      const listed = await request(service.url, "GET", "/%761/apps", { authorization: `Bearer ${ADMIN_KEY}` });
      assert.equal(listed.status, 200, "the router accepts an escaped /v1 prefix");
      const absolute = await request(service.url, "GET", `${service.url}/v1/apps`, { authorization: `Bearer ${ADMIN_KEY}` });
      assert.equal(absolute.status, 200, "the router accepts the absolute form");
    });

    test("a route that does not declare who may call it cannot be registered", async () => {
      const app = Fastify();
      const table = requireDeclaredAccess(app);
      app.get("/declared", { config: { auth: "admin" } }, async () => ({ ok: true }));
      await assert.rejects(async () => {
        app.get("/undeclared", async () => ({ ok: true }));
        await app.ready();
      }, /GET \/undeclared declares no access/);
      assert.ok(table.some((r) => r.url === "/declared" && r.auth === "admin"));
      await app.close().catch(() => undefined);
    });
  });

  describe("client input never gets a 5xx, and every error has our shape", () => {
    test("a malformed or unknown session cookie is 401", async () => {
      for (const cookie of [
        "tidings_session=%E0%A4%A",
        "tidings_session=",
        'tidings_session="quoted"',
        `tidings_session=${"a".repeat(5000)}`,
        "__Host-tidings_session=%%%",
        `tidings_session=${"A".repeat(43)}`,
        "tidings_session",
        "=; ;;tidings_session=x=y",
      ]) {
        for (const [method, path] of [
          ["GET", "/v1/apps"],
          ["GET", "/v1/session"],
          ["POST", "/v1/subscriptions"],
          ["GET", "/v1/messages"],
        ] as const) {
          const answer = await request(service.url, method, path, { cookie, "content-type": "application/json" }, method === "POST" ? "{}" : undefined);
          assert.equal(answer.status, 401, `${cookie.slice(0, 40)} on ${method} ${path}: ${answer.text}`);
          assert.equal(ourShape(answer.text, cookie).code, "unauthorized");
        }
      }
      // Signing out with a garbled cookie just clears it.
      const out = await request(service.url, "DELETE", "/v1/session", { authorization: `Bearer ${ADMIN_KEY}`, cookie: "tidings_session=%E0" });
      assert.equal(out.status, 204);
    });

    test("a NUL in the path or the query is 400 naming the field", async () => {
      const auth = { authorization: `Bearer ${ADMIN_KEY}` };
      const cases: Array<[string, string]> = [
        ["/v1/messages/%00", "params.id"],
        ["/v1/messages/a%00b/attempts", "params.id"],
        ["/v1/apps/%00", "params.name"],
        ["/v1/subscriptions/x%00", "params.name"],
        ["/v1/jobs/%00", "params.id"],
        ["/v1/messages?topic=%00", "querystring.topic"],
        ["/v1/messages?key=a%00&topic=t", "querystring.key"],
        ["/v1/deliveries?subscription=%00", "querystring.subscription"],
        ["/v1/jobs?subscription=%00", "querystring.subscription"],
        ["/console/%00", "params.*"],
      ];
      for (const [path, field] of cases) {
        const answer = await request(service.url, "GET", path, auth);
        assert.equal(answer.status, 400, `${path}: ${answer.text}`);
        const error = ourShape(answer.text, path);
        assert.equal(error.code, "invalid_request", path);
        assert.equal(error.field, field, path);
      }
      // With an app key too (the owner checks read the database with the value).
      const asApp = await request(service.url, "POST", "/v1/messages/%00/commit", { authorization: `Bearer ${appKey}` });
      assert.equal(asApp.status, 400, asApp.text);
      // And without a key it is 401 first: nothing about the input is told before authentication.
      assert.equal((await request(service.url, "GET", "/v1/messages/%00")).status, 401);
    });

    test("a bad escape in the URL is 400 in our shape", async () => {
      for (const path of ["/v1/messages/%E0%A4%A", "/v1/messages/%", "/v1/apps/%zz", "/%E0%A4%A", "/v1/messages/%C0%AF"]) {
        const answer = await request(service.url, "GET", path, { authorization: `Bearer ${ADMIN_KEY}` });
        assert.ok(answer.status >= 400 && answer.status < 500, `${path}: ${answer.status} ${answer.text}`);
        ourShape(answer.text, path);
      }
      const bad = await request(service.url, "GET", "/v1/messages/%E0%A4%A");
      assert.equal(bad.status, 400);
      assert.deepEqual(JSON.parse(bad.text), { error: { code: "invalid_request", message: "the URL has an invalid percent-escape", field: "url" } });
    });

    test("malformed HTTP, unknown methods, huge headers, long segments, odd bodies and odd Authorization: 4xx in our shape", async () => {
      const auth = `Authorization: Bearer ${ADMIN_KEY}\r\n`;
      const json = (body: string) => `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const cases: Array<[string, string, number]> = [
        ["unknown method", `FOO /v1/apps HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400],
        ["a method with no route", `PROPFIND /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`, 404],
        ["PUT on a POST route", `PUT /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`, 404],
        ["OPTIONS", `OPTIONS /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 404],
        ["headers over the limit", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
        [
          "malformed chunked body",
          `POST /v1/apps HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`,
          400,
        ],
        ["garbage request line", `\x01\x02\x03 / HTTP/1.1\r\n\r\n`, 400],
        ["bad Content-Length", `POST /v1/apps HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: -1\r\n\r\n{}`, 400],
        ["a path segment over the limit", `GET /v1/messages/${"a".repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`, 414],
        [
          "a text/plain body",
          `POST /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`,
          415,
        ],
        ["no Content-Type", `POST /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}Content-Length: 2\r\n\r\n{}`, 415],
        ["a garbled Content-Type", `POST /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}Content-Type: ;;;\r\nContent-Length: 2\r\n\r\n{}`, 415],
        ["invalid JSON", `POST /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}${json("{bad")}`, 400],
        ["__proto__ in JSON", `POST /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}${json('{"name":"x","__proto__":{"a":1}}')}`, 400],
        [
          "NUL inside a JSON string",
          `POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}${json('{"name":"s","topic":"t","endpoint":{"type":"http","url":"http://127.0.0.1:9/","headers":{"a":"b\\u0000"}}}')}`,
          400,
        ],
        [
          "a lone surrogate in a payload",
          `POST /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}${json('{"topic":"t","payload":{"a":"\\ud800"}}')}`,
          400,
        ],
        ["a JSON body on a GET", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}${json("{bad")}`, 200],
        ["Authorization: Bearer (no key)", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer\r\n\r\n`, 401],
        [
          "Authorization: Basic",
          `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic ${Buffer.from(`admin:${ADMIN_KEY}`).toString("base64")}\r\n\r\n`,
          401,
        ],
        ["Authorization: two keys", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${ADMIN_KEY} ${ADMIN_KEY}\r\n\r\n`, 401],
        [
          "Authorization: a key then junk",
          `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${ADMIN_KEY}, Bearer x\r\n\r\n`,
          401,
        ],
        ["Authorization: Bearer with a tab", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer\t${ADMIN_KEY}\r\n\r\n`, 200],
        ["Authorization: bearer, lower case", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: bearer ${ADMIN_KEY}\r\n\r\n`, 200],
        ["Authorization: non-ASCII", `GET /v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xe9\xe9\xe9\r\n\r\n`, 401],
      ];
      for (const [what, bytes, status] of cases) {
        const answer = await rawExchange(service.url, bytes);
        assert.equal(answer.status, status, `${what}: ${answer.body}`);
        if (status >= 400) ourShape(answer.body, what);
      }
      // The service is still well after all that.
      assert.equal((await admin.get("/v1/apps")).status, 200);
    });
  });

  test("endpoint header values are masked in every answer; sent back masked, they keep the stored values", async () => {
    const secret = "Bearer receiver-secret-0123456789";
    const created = await admin.post("/v1/subscriptions", {
      name: "masked",
      topic: "edge.masked",
      endpoint: { type: "http", url: `${receiver.url}/hook`, headers: { authorization: secret, "x-team": "blue" } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const masked = { authorization: "***", "x-team": "***" };
    assert.deepEqual(created.body.endpoint, { type: "http", url: `${receiver.url}/hook`, headers: masked });
    const one = await admin.get("/v1/subscriptions/masked");
    const list = await admin.get("/v1/subscriptions");
    assert.deepEqual(one.body.endpoint.headers, masked);
    assert.deepEqual(list.body.items.find((s: { name: string }) => s.name === "masked").endpoint.headers, masked);
    for (const answer of [created, one, list]) assert.ok(!JSON.stringify(answer.body).includes("receiver-secret"));

    // The endpoint as shown, with one header changed: the masked one keeps its stored value.
    const patched = await admin.patch("/v1/subscriptions/masked", { endpoint: { ...one.body.endpoint, headers: { authorization: "***", "x-team": "green" } } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.endpoint.headers, masked);
    const sent = await admin.post("/v1/messages", { id: "edge-masked-1", topic: "edge.masked", payload: { n: 1 } });
    assert.equal(sent.status, 201);
    await waitFor("the delivery", () => receiver.counts.get("edge-masked-1") === 1);
    const got = receiver.received.find((r) => r.id === "edge-masked-1")!;
    assert.equal(got.headers.authorization, secret);
    assert.equal(got.headers["x-team"], "green");

    // Credentials belong in the (masked) headers: an HTTP endpoint URL may not carry them.
    const withPassword = await admin.post("/v1/subscriptions", {
      name: "pw",
      topic: "edge.pw",
      endpoint: { type: "http", url: `http://user:pw-secret-42@127.0.0.1:9/hook` },
    });
    assert.equal(withPassword.status, 400);
    assert.equal(withPassword.body.error.field, "endpoint.url");

    for (const [headers, field] of [
      [{ "bad name": "x" }, "endpoint.headers.bad name"],
      [{ "x-ok": "a\r\nx-injected: 1" }, "endpoint.headers.x-ok"],
    ] as const) {
      const refused = await admin.post("/v1/subscriptions", { name: "bad-headers", topic: "t", endpoint: { type: "http", url: `${receiver.url}/`, headers } });
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.error.field, field);
    }
  });

  test("a console session ends when the admin key changes", async () => {
    const first = await startTestService(database.url);
    let second: RunningService | undefined;
    try {
      const signIn = await request(first.url, "POST", "/v1/session", { "content-type": "application/json" }, JSON.stringify({ adminKey: ADMIN_KEY }));
      assert.equal(signIn.status, 201);
      const cookie = String(signIn.headers["set-cookie"]).split(";")[0]!;
      assert.equal((await request(first.url, "GET", "/v1/session", { cookie })).status, 200);
      await first.close();

      // The same database, another admin key.
      const newKey = "another-admin-key-9876543210";
      second = await startTestService(database.url, { TIDINGS_ADMIN_KEY: newKey });
      const refused = await request(second.url, "GET", "/v1/session", { cookie });
      assert.equal(refused.status, 401, refused.text);
      assert.equal(ourShape(refused.text, "old session").code, "unauthorized");
      assert.equal((await request(second.url, "GET", "/v1/apps", { cookie })).status, 401);
      assert.equal((await api(second.url, ADMIN_KEY).get("/v1/apps")).status, 401);
      // The new key signs in as usual.
      const again = await request(second.url, "POST", "/v1/session", { "content-type": "application/json" }, JSON.stringify({ adminKey: newKey }));
      assert.equal(again.status, 201);
      const fresh = String(again.headers["set-cookie"]).split(";")[0]!;
      assert.equal((await request(second.url, "GET", "/v1/apps", { cookie: fresh })).status, 200);
    } finally {
      await first.close();
      await second?.close();
    }
  });

  test("the session cookie is Secure when the request came over https through a trusted proxy, and only then", async () => {
    const proto = { "content-type": "application/json", "x-forwarded-proto": "https" };
    const body = JSON.stringify({ adminKey: ADMIN_KEY });
    const trusted = await request(service.url, "POST", "/v1/session", proto, body);
    assert.equal(trusted.status, 201);
    const cookie = String(trusted.headers["set-cookie"]);
    assert.match(cookie, /^__Host-tidings_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    assert.equal((await request(service.url, "GET", "/v1/session", { cookie: cookie.split(";")[0]! })).status, 200);

    const untrusted = await startTestService(database.url);
    try {
      const answer = await request(untrusted.url, "POST", "/v1/session", proto, body);
      assert.equal(answer.status, 201);
      assert.match(String(answer.headers["set-cookie"]), /^tidings_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    } finally {
      await untrusted.close();
    }
  });

  test("failed keys are limited per client address: 429 with Retry-After after 20 within a minute", async () => {
    const from = (address: string, key: string | null) => {
      const headers: Record<string, string> = { "x-forwarded-for": address };
      if (key !== null) headers.authorization = `Bearer ${key}`;
      return request(service.url, "GET", "/v1/apps", headers);
    };
    // Successes do not count, and calls without a key are not guesses.
    for (let i = 0; i < 30; i++) assert.equal((await from("203.0.113.7", ADMIN_KEY)).status, 200);
    for (let i = 0; i < 30; i++) assert.equal((await from("203.0.113.7", null)).status, 401);
    for (let i = 0; i < 20; i++) {
      const answer = await from("203.0.113.7", `tdk_guess-${i}-0123456789abcdef`);
      assert.equal(answer.status, 401, `guess ${i}: ${answer.text}`);
    }
    const limited = await from("203.0.113.7", "tdk_guess-21-0123456789abcdef");
    assert.equal(limited.status, 429, limited.text);
    assert.equal(ourShape(limited.text, "limited").code, "too_many_requests");
    const retryAfter = Number(limited.headers["retry-after"]);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    // The address is refused whatever the key until the minute is over; another address is not.
    assert.equal((await from("203.0.113.7", ADMIN_KEY)).status, 429);
    assert.equal((await from("203.0.113.8", ADMIN_KEY)).status, 200);
    assert.equal((await from("203.0.113.8", appKey)).status, 403);

    // Without a trusted proxy, X-Forwarded-For is the client's word and is not believed.
    const direct = await startTestService(database.url);
    try {
      for (let i = 0; i < 20; i++) {
        const answer = await request(direct.url, "GET", "/v1/apps", {
          authorization: `Bearer tdk_g${i}-0123456789abcdef`,
          "x-forwarded-for": `198.51.100.${i}`,
        });
        assert.equal(answer.status, 401);
      }
      const answer = await request(direct.url, "GET", "/v1/apps", { authorization: `Bearer ${ADMIN_KEY}`, "x-forwarded-for": "198.51.100.99" });
      assert.equal(answer.status, 429);
    } finally {
      await direct.close();
    }
  });

  test("a client that sends its headers and drips its body is cut off within the request timeout", async () => {
    const slow = await startTestService(database.url, { TIDINGS_REQUEST_TIMEOUT: "1s" });
    try {
      const { port } = new URL(slow.url);
      // A real misbehaving client in a process of its own: headers at once, then a byte every 100 ms.
      const script = `
        const net = require("node:net");
        const started = Date.now();
        let out = "";
        const socket = net.connect(${Number(port)}, "127.0.0.1", () => {
          socket.write("POST /v1/messages HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer ${ADMIN_KEY}\\r\\nContent-Type: application/json\\r\\nContent-Length: 1000\\r\\n\\r\\n{");
          const drip = setInterval(() => socket.writable && socket.write(" "), 100);
          socket.on("close", () => {
            clearInterval(drip);
            process.stdout.write(JSON.stringify({ ms: Date.now() - started, out }));
            process.exit(0);
          });
        });
        socket.setEncoding("utf8");
        socket.on("data", (d) => (out += d));
        socket.on("error", () => undefined);
        setTimeout(() => { process.stdout.write(JSON.stringify({ ms: Date.now() - started, out, timedOut: true })); process.exit(0); }, 15000);
      `;
      const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      await new Promise((resolve) => child.once("exit", resolve));
      const result = JSON.parse(stdout) as { ms: number; out: string; timedOut?: boolean };
      console.log(`slow upload cut off after ${result.ms} ms (timeout 1 s)`);
      assert.ok(!result.timedOut, "the server never cut the client off");
      assert.ok(result.ms >= 900 && result.ms < 2500, `cut off after ${result.ms} ms`);
      assert.match(result.out, /^HTTP\/1\.1 408 /);
      assert.equal(ourShape(result.out.slice(result.out.indexOf("\r\n\r\n") + 4), "timeout").code, "request_timeout");
      // A client in a hurry is served as usual.
      assert.equal((await api(slow.url, ADMIN_KEY).post("/v1/messages", { topic: "edge.fast", payload: { n: 1 } })).status, 201);
    } finally {
      await slow.close();
    }
  });
});

describe("configuration of the edge", () => {
  const load = (env: Record<string, string>) => loadConfig({ TIDINGS_ADMIN_KEY: ADMIN_KEY, ...env });
  test("TIDINGS_TRUST_PROXY: off by default; true, a hop count, or addresses and CIDR ranges", () => {
    assert.equal(load({}).trustProxy, false);
    assert.equal(load({ TIDINGS_TRUST_PROXY: "false" }).trustProxy, false);
    assert.equal(load({ TIDINGS_TRUST_PROXY: "true" }).trustProxy, true);
    assert.equal(load({ TIDINGS_TRUST_PROXY: "2" }).trustProxy, 2);
    assert.deepEqual(load({ TIDINGS_TRUST_PROXY: "10.0.0.0/8, 127.0.0.1,loopback" }).trustProxy, ["10.0.0.0/8", "127.0.0.1", "loopback"]);
    // Empty entries are ignored, as in TIDINGS_ENDPOINT_ALLOW/_DENY.
    assert.deepEqual(load({ TIDINGS_TRUST_PROXY: "10.0.0.1,," }).trustProxy, ["10.0.0.1"]);
    for (const bad of ["yes", "10.0.0.0/33", "0", "true,10.0.0.1"]) {
      assert.throws(() => load({ TIDINGS_TRUST_PROXY: bad }), ConfigError, bad);
    }
  });
  test("TIDINGS_REQUEST_TIMEOUT: 30 s by default, from 100 ms to 1 h", () => {
    assert.equal(load({}).requestTimeoutMs, 30_000);
    assert.equal(load({ TIDINGS_REQUEST_TIMEOUT: "5s" }).requestTimeoutMs, 5_000);
    for (const bad of ["0s", "50ms", "2h", "soon"]) assert.throws(() => load({ TIDINGS_REQUEST_TIMEOUT: bad }), ConfigError, bad);
  });
});
