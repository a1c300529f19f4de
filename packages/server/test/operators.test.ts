import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, runTidings, startTestService, type RunningService } from "@tidings/testkit/service";

/**
 * Who may call each route, written out here on purpose: a new route must be classified in this
 * table too, and a route whose level changes fails until the table says so.
 */
const EXPECTED: Record<string, "public" | "app" | "app, reads" | "viewer" | "operator" | "admin"> = {
  "GET /healthz": "public",
  "GET /readyz": "public",
  "GET /metrics": "public",
  "GET /openapi.json": "public",
  "GET /": "public",
  "GET /console": "public",
  "GET /console/*": "public",
  "POST /v1/session": "public",
  "GET /v1/session": "viewer",
  "DELETE /v1/session": "viewer",
  "POST /v1/messages": "app",
  "POST /v1/messages/batch": "app",
  "GET /v1/messages": "app",
  "GET /v1/feed": "app",
  "POST /v1/reconciliations": "app",
  "GET /v1/reconciliations": "viewer",
  "GET /v1/reconciliations/:id": "viewer",
  "GET /v1/messages/:id": "app",
  "GET /v1/messages/:id/attempts": "app",
  "GET /v1/messages/:id/checks": "app",
  "POST /v1/messages/:id/resend": "app",
  "POST /v1/messages/:id/dead": "app",
  "POST /v1/messages/:id/commit": "app",
  "POST /v1/messages/commit": "app",
  // A POST that only reads: a viewer may call it, as the GET of one message.
  "POST /v1/messages/lookup": "app, reads",
  "POST /v1/messages/:id/rollback": "app",
  "DELETE /v1/messages/:id": "app",
  "GET /v1/stats": "viewer",
  "GET /v1/deliveries": "viewer",
  "POST /v1/deliveries/:id/skip": "operator",
  "GET /v1/alerts": "viewer",
  "GET /v1/alerts/:id": "viewer",
  "POST /v1/alerts/:id/acknowledge": "operator",
  "POST /v1/alerts/:id/resolve": "operator",
  "GET /v1/channels": "viewer",
  "GET /v1/channels/:id": "viewer",
  "POST /v1/channels": "admin",
  "PATCH /v1/channels/:id": "admin",
  "DELETE /v1/channels/:id": "admin",
  "POST /v1/channels/:id/test": "operator",
  "POST /v1/relays/heartbeat": "app",
  "POST /v1/outcomes": "app",
  "GET /v1/relays": "viewer",
  "DELETE /v1/relays/:app/:name": "operator",
  "GET /v1/jobs": "viewer",
  "GET /v1/jobs/:id": "viewer",
  "POST /v1/subscriptions/:name/resend-dead-jobs": "operator",
  "POST /v1/subscriptions/:name/resend-dead": "operator",
  "POST /v1/subscriptions/:name/retry-pending": "operator",
  "POST /v1/subscriptions/:name/recover": "operator",
  "GET /v1/subscriptions": "viewer",
  "GET /v1/subscriptions/:name": "viewer",
  "POST /v1/subscriptions": "admin",
  "PATCH /v1/subscriptions/:name": "admin",
  "DELETE /v1/subscriptions/:name": "admin",
  "GET /v1/apps": "viewer",
  "GET /v1/apps/:name": "viewer",
  "POST /v1/apps": "admin",
  "PATCH /v1/apps/:name": "admin",
  "DELETE /v1/apps/:name": "admin",
  "GET /v1/operators": "viewer",
  "GET /v1/operators/:name": "viewer",
  "POST /v1/operators": "admin",
  "PATCH /v1/operators/:name": "admin",
  "DELETE /v1/operators/:name": "admin",
  "GET /v1/audit": "viewer",
};

type Who = "no key" | "app" | "viewer" | "operator" | "admin operator" | "admin key";
const PEOPLE: Record<string, number> = { viewer: 0, operator: 1, "admin operator": 2, "admin key": 2 };
const LEVEL: Record<string, number> = { viewer: 0, operator: 1, admin: 2 };

/** What the table says, decided here without the service's code: may `who` call `method` on a route of `level`? */
function mayCall(level: string, method: string, who: Who): boolean {
  if (level === "public") return true;
  if (who === "no key") return false;
  if (level === "app, reads") return who === "app" || PEOPLE[who]! >= 0;
  if (level === "app") return who === "app" || PEOPLE[who]! >= (method === "GET" ? 0 : 1);
  return who !== "app" && PEOPLE[who]! >= LEVEL[level]!;
}

const samplePath = (url: string): string =>
  url
    .split("/")
    .map((segment) => (segment === ":id" ? "1" : segment.startsWith(":") ? "probe" : segment === "*" ? "index.html" : segment))
    .join("/");

describe("operators and roles", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  const keys: Partial<Record<Who, string>> = { "admin key": ADMIN_KEY };

  before(async () => {
    db = await createTestDatabase("operators");
    service = await startTestService(db.url);
    receiver = await new Receiver().start();
    admin = api(service.url, ADMIN_KEY);
    keys.app = (await admin.post("/v1/apps", { name: "shop" })).body.apiKey;
    for (const [who, role] of [
      ["viewer", "viewer"],
      ["operator", "operator"],
      ["admin operator", "admin"],
    ] as const) {
      const created = await admin.post("/v1/operators", { name: who.replace(" ", "-"), role });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      keys[who] = created.body.key;
    }
  });
  after(async () => {
    await service?.close();
    await receiver?.stop();
    await db?.drop();
  });

  test("every registered route, called by each kind of caller: allowed, or 401 without a key and 403 naming the role", async () => {
    const routes = service.routes.filter((r) => r.method !== "HEAD");
    const registered = Object.fromEntries(routes.map((r) => [`${r.method} ${r.url}`, r.reads ? `${r.auth}, reads` : r.auth]));
    assert.deepEqual(registered, EXPECTED, "the routes and their access are exactly the table's");

    const failures: string[] = [];
    const callers: Who[] = ["no key", "app", "viewer", "operator", "admin operator", "admin key"];
    for (const route of routes) {
      // Signing out would end nothing (these are keys), but keep the table's calls free of side effects that matter.
      for (const who of callers) {
        const key = keys[who] ?? null;
        const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
        const hasBody = route.method === "POST" || route.method === "PATCH";
        if (hasBody) headers["content-type"] = "application/json";
        const response = await fetch(service.url + samplePath(route.url), {
          method: route.method,
          headers,
          body: hasBody ? "{}" : undefined,
          redirect: "manual",
        });
        const text = await response.text();
        const level = EXPECTED[`${route.method} ${route.url}`]!;
        const what = `${route.method} ${route.url} (${level}) as ${who} → ${response.status} ${text.slice(0, 160)}`;
        if (mayCall(level, route.method, who)) {
          if (response.status === 401 || response.status === 403) failures.push(`refused: ${what}`);
        } else if (who === "no key") {
          if (response.status !== 401) failures.push(`not 401: ${what}`);
        } else {
          const needed = level === "app" ? "operator" : level;
          if (response.status !== 403) failures.push(`not 403: ${what}`);
          else if (!JSON.parse(text).error.message.includes(`the ${needed} role`)) failures.push(`403 does not name the ${needed} role: ${what}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  test("operators: created with a key shown once, listed, given another role at once, key rotated, removed", async () => {
    const created = await admin.post("/v1/operators", { name: "ana", role: "viewer" });
    assert.equal(created.status, 201);
    assert.match(created.body.key, /^tdo_[\w-]{32}$/);
    assert.equal((await admin.post("/v1/operators", { name: "ana", role: "admin" })).status, 409);
    const bad = await admin.post("/v1/operators", { name: "bo", role: "root" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "role");
    assert.equal((await admin.post("/v1/operators", { name: "Not A Name", role: "viewer" })).body.error.field, "name");

    const listed = await admin.get("/v1/operators");
    assert.deepEqual(
      listed.body.items.map((o: { name: string; role: string }) => `${o.name}:${o.role}`),
      ["admin-operator:admin", "ana:viewer", "operator:operator", "viewer:viewer"],
    );
    assert.ok(
      listed.body.items.every((o: object) => !("key" in o)),
      "keys are never listed",
    );

    const ana = api(service.url, created.body.key);
    assert.equal((await ana.get("/v1/subscriptions")).status, 200);
    assert.equal((await ana.post("/v1/alerts/1/resolve")).status, 403);
    // The new role applies to the next request (this node forgets what it cached).
    assert.equal((await admin.patch("/v1/operators/ana", { role: "operator" })).body.role, "operator");
    assert.equal((await ana.post("/v1/alerts/1/resolve")).status, 404, "an operator may resolve alerts (this one does not exist)");

    const rotated = await admin.patch("/v1/operators/ana", { rotateKey: true });
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.key, created.body.key);
    assert.equal((await ana.get("/v1/stats")).status, 401, "the old key stops working");
    const anaAgain = api(service.url, rotated.body.key);
    assert.equal((await anaAgain.get("/v1/stats")).status, 200);
    assert.equal((await admin.get("/v1/operators/ana")).body.role, "operator", "rotating keeps the role");

    assert.equal((await admin.delete("/v1/operators/ana")).status, 204);
    assert.equal((await anaAgain.get("/v1/stats")).status, 401, "a removed operator's key stops working");
    assert.equal((await admin.delete("/v1/operators/ana")).status, 404);
  });

  test("a viewer reads the operators: names, roles and dates, never a key or its hash; changing them stays the admins'", async () => {
    const viewer = api(service.url, keys.viewer!);
    const listed = await viewer.get("/v1/operators");
    assert.equal(listed.status, 200);
    const viewerRow = listed.body.items.find((o: { name: string }) => o.name === "viewer");
    assert.deepEqual(Object.keys(viewerRow).sort(), ["createdAt", "name", "role", "updatedAt"]);
    const one = await viewer.get("/v1/operators/operator");
    assert.equal(one.status, 200);
    assert.deepEqual(Object.keys(one.body).sort(), ["createdAt", "name", "role", "updatedAt"]);
    assert.equal(one.body.role, "operator");
    assert.equal((await viewer.get("/v1/operators/nobody")).status, 404);
    // No key, nor the stored hash of one, in any form.
    const texts = [JSON.stringify(listed.body), JSON.stringify(one.body)];
    for (const who of ["viewer", "operator", "admin operator"] as const) {
      const hash = createHash("sha256").update(keys[who]!).digest();
      for (const secret of [keys[who]!, hash.toString("hex"), hash.toString("base64"), hash.toString("base64url")])
        assert.ok(
          texts.every((text) => !text.includes(secret)),
          `no key material of ${who} in the answers`,
        );
    }
    const refused = await viewer.post("/v1/operators", { name: "by-viewer", role: "admin" });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /the admin role/);
  });

  test("an admin operator may not lower their own role or remove themselves; another admin may", async () => {
    const self = api(service.url, keys["admin operator"]!);
    const demote = await self.patch("/v1/operators/admin-operator", { role: "viewer" });
    assert.equal(demote.status, 409);
    assert.match(demote.body.error.message, /own role/);
    assert.equal((await self.delete("/v1/operators/admin-operator")).status, 409);
    const other = await admin.post("/v1/operators", { name: "second-admin", role: "admin" });
    const second = api(service.url, other.body.key);
    assert.equal((await second.patch("/v1/operators/second-admin", { rotateKey: true })).status, 200, "rotating one's own key is allowed");
    assert.equal((await self.delete("/v1/operators/second-admin")).status, 204, "an admin operator may remove another");
    assert.equal((await admin.get("/v1/operators/admin-operator")).body.role, "admin");
  });

  test("people act across apps on the app routes: a viewer reads any app's message, an operator re-sends it, an app only its own", async () => {
    await admin.post("/v1/subscriptions", { name: "people", topic: "p.t", endpoint: { type: "http", url: `${receiver.url}/people` } });
    const shop = api(service.url, keys.app!);
    assert.equal((await shop.post("/v1/messages", { id: "m-1", topic: "p.t", payload: {} })).status, 201);
    const viewer = api(service.url, keys.viewer!);
    const operator = api(service.url, keys.operator!);
    assert.equal((await viewer.get("/v1/messages/shop%2Fm-1")).body.id, "m-1");
    assert.equal((await viewer.get("/v1/messages?app=shop")).body.items.length, 1);
    const refused = await viewer.post("/v1/messages/shop%2Fm-1/resend", {});
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /the operator role/);
    assert.equal((await operator.post("/v1/messages/shop%2Fm-1/resend", {})).body.resent, 1);
    assert.equal((await operator.patch("/v1/subscriptions/people", { enabled: false })).status, 403);
  });

  test("the console signs an operator in: the session says who and which role, and refuses what the role may not do", async () => {
    const signIn = await fetch(`${service.url}/v1/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: keys.viewer }),
    });
    assert.equal(signIn.status, 201);
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    const session = await signIn.json();
    assert.deepEqual(session.who, { kind: "operator", name: "viewer", role: "viewer" });
    const get = await fetch(`${service.url}/v1/session`, { headers: { cookie } });
    assert.deepEqual((await get.json()).who, { kind: "operator", name: "viewer", role: "viewer" });
    const resolve = await fetch(`${service.url}/v1/alerts/1/resolve`, { method: "POST", headers: { cookie, "x-csrf-token": session.csrfToken } });
    assert.equal(resolve.status, 403);

    // A new role applies to the session at once; removing the operator ends it.
    await admin.patch("/v1/operators/viewer", { role: "operator" });
    assert.equal((await (await fetch(`${service.url}/v1/session`, { headers: { cookie } })).json()).who.role, "operator");
    const resolved = await fetch(`${service.url}/v1/alerts/1/resolve`, { method: "POST", headers: { cookie, "x-csrf-token": session.csrfToken } });
    assert.equal(resolved.status, 404);
    await admin.patch("/v1/operators/viewer", { role: "viewer" });

    const appKey = await fetch(`${service.url}/v1/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: keys.app }),
    });
    assert.equal(appKey.status, 401, "an app's key does not sign in to the console");
    assert.equal((await appKey.json()).error.field, "key");

    const adminSession = await fetch(`${service.url}/v1/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ adminKey: ADMIN_KEY }),
    });
    assert.deepEqual((await adminSession.json()).who, { kind: "admin", name: "admin key", role: "admin" });

    const temp = await admin.post("/v1/operators", { name: "temp", role: "operator" });
    const tempSignIn = await fetch(`${service.url}/v1/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: temp.body.key }),
    });
    const tempCookie = tempSignIn.headers.get("set-cookie")!.split(";")[0]!;
    await admin.patch("/v1/operators/temp", { rotateKey: true });
    assert.equal((await fetch(`${service.url}/v1/session`, { headers: { cookie: tempCookie } })).status, 401, "rotating the key ends the sessions");
  });

  test("tidings operators: add, list, role, rotate-key, remove from a shell", async () => {
    const env = { TIDINGS_URL: service.url, TIDINGS_ADMIN_KEY: ADMIN_KEY };
    const added = await runTidings(["operators", "add", "cli-op", "--role", "viewer"], env);
    assert.equal(added.code, 0, added.stderr);
    const key = added.stdout.trim().split("\n").at(-1)!;
    assert.match(key, /^tdo_/);
    assert.equal((await api(service.url, key).get("/v1/stats")).status, 200, "the printed key works");

    const listed = await runTidings(["operators"], env);
    assert.match(listed.stdout, /^cli-op +viewer /m);
    assert.equal((await runTidings(["operators", "role", "cli-op", "operator"], env)).stdout.trim(), "cli-op is now operator");
    const rotated = await runTidings(["operators", "rotate-key", "cli-op"], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal((await api(service.url, key).get("/v1/stats")).status, 401);
    assert.equal((await runTidings(["operators", "remove", "cli-op"], env)).code, 0);
    const gone = await runTidings(["operators", "remove", "cli-op"], env);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no operator named cli-op/);
    assert.equal((await runTidings(["operators", "add", "x"], env)).code, 2, "add without --role is bad usage");
    const viewerEnv = { ...env, TIDINGS_ADMIN_KEY: keys.viewer! };
    const readByViewer = await runTidings(["operators", "list"], viewerEnv);
    assert.equal(readByViewer.code, 0, readByViewer.stderr);
    assert.match(readByViewer.stdout, /^viewer +viewer /m, "a viewer reads the operators");
    const asViewer = await runTidings(["operators", "add", "by-viewer", "--role", "admin"], viewerEnv);
    assert.equal(asViewer.code, 1);
    assert.match(asViewer.stderr, /403 this needs the admin role/);
  });
});
