import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { forbidden, invalid, notFound } from "../../domain/errors.ts";
import { deleteRelay, listRelays, recordHeartbeat } from "../../store/relays.ts";
import type { RouteServices } from "../routeServices.ts";
import { handAction } from "../../domain/audit.ts";
import { noteAudit } from "../audit.ts";
import { ErrorBody } from "../schemas.ts";

const AppName = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$" });
const RelayName = Type.String({
  pattern: "^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$",
  description: "the relay's name, unique within its app (the SDK's default: host:pid); letters, digits, `_ . : @ -`, up to 128",
});
/** Counts the relay reads from its outbox; it caps them (the SDK at 100000), this only bounds them. */
const Count = Type.Integer({ minimum: 0, maximum: 1e12 });

const Heartbeat = Type.Object(
  {
    name: RelayName,
    app: Type.Optional(AppName),
    pending: { ...Count, description: "outbox rows waiting to be shipped" },
    failed: { ...Count, description: "outbox rows the relay gave up on (refused by the service, or out of attempts)" },
    oldestPendingSeconds: Type.Union([Type.Number({ minimum: 0, maximum: 1e10 }), Type.Null()], {
      description: "how long the oldest waiting row has waited; null when none waits",
    }),
    lastSentAt: Type.Union([Type.String({ format: "date-time", maxLength: 40 }), Type.Null()], { description: "when the relay last shipped a batch" }),
    intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000, description: "how often the relay reports (10000 by default)" })),
    stopped: Type.Optional(Type.Boolean({ description: "the relay is stopping on purpose: it is not awaited any more" })),
  },
  { additionalProperties: false },
);
type Heartbeat = Static<typeof Heartbeat>;

const Relay = Type.Object(
  {
    app: Type.Union([Type.String(), Type.Null()], { description: "null for a relay that ships the admin's own messages" }),
    name: Type.String(),
    pending: Type.Integer(),
    failed: Type.Integer(),
    oldestPendingSeconds: Type.Union([Type.Number(), Type.Null()]),
    lastSentAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    intervalMs: Type.Integer(),
    firstSeenAt: Type.String({ format: "date-time" }),
    lastSeenAt: Type.String({ format: "date-time" }),
    stoppedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    heartbeatAgeSeconds: Type.Number(),
    stale: Type.Boolean({ description: "not stopped, and no heartbeat for longer than TIDINGS_RELAY_STALE_AFTER" }),
  },
  { $id: "Relay" },
);
const RelayParams = Type.Object({ app: Type.String({ pattern: "^(-|[a-z0-9][a-z0-9_.-]{0,62})$" }), name: RelayName });

/** A relay's clock may be off; a lastSentAt further ahead than this is no real time. */
const FUTURE_SLACK_MS = 86_400_000;

function lastSent(text: string | null): Date | null {
  if (text === null) return null;
  const at = new Date(text);
  if (Number.isNaN(at.getTime()) || at.getTime() < 0 || at.getTime() > Date.now() + FUTURE_SLACK_MS) {
    throw invalid("lastSentAt", `lastSentAt must be a real time, not in the future: ${text}`);
  }
  return at;
}

/**
 * Outbox relays' heartbeats. An app reports only for itself (its key names it); the admin's key
 * may name any app, or none for a relay of the admin's own messages. The list is the admin's.
 */
export function relayRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["relays"];
  app.post<{ Body: Heartbeat }>(
    "/v1/relays/heartbeat",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "An outbox relay reports what it holds",
        description: "Sent by the SDK's relay every 10 s. An app key reports for its own app only (a different `app` is 403).",
        body: Heartbeat,
        response: { 204: Type.Null(), "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const principal = request.principal;
      let owner: string;
      if (principal.kind === "app") {
        if (body.app !== undefined && body.app !== principal.app)
          throw forbidden(`an app reports only for its own relays: this key is the app ${principal.app}`);
        owner = principal.app;
      } else owner = body.app ?? "";
      await recordHeartbeat(s.db, {
        app: owner,
        name: body.name,
        pending: body.pending,
        failed: body.failed,
        oldestPendingSeconds: body.oldestPendingSeconds,
        lastSentAt: lastSent(body.lastSentAt),
        intervalMs: body.intervalMs ?? 10_000,
        stopped: body.stopped === true,
      });
      return reply.status(204).send();
    },
  );
  app.get(
    "/v1/relays",
    {
      config: { auth: "viewer" },
      schema: {
        tags,
        summary: "Outbox relays and their last heartbeats, each with `stale`",
        response: { 200: Type.Object({ staleAfterMs: Type.Integer(), items: Type.Array(Relay) }), "4xx": ErrorBody },
      },
    },
    async () => ({ staleAfterMs: s.config.relayStaleAfterMs, items: await listRelays(s.db, s.config.relayStaleAfterMs) }),
  );
  app.delete<{ Params: Static<typeof RelayParams> }>(
    "/v1/relays/:app/:name",
    {
      config: { auth: "operator", audit: handAction("relay.forget") },
      schema: {
        tags,
        summary: "Forget a relay that will not come back (`-` for the admin's own relays' app)",
        params: RelayParams,
        response: { 204: Type.Null(), "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const owner = request.params.app === "-" ? "" : request.params.app;
      // Named within its app: two apps may each have a relay of the same name.
      noteAudit(request, { target: `relay/${request.params.app}/${request.params.name}` });
      if (!(await deleteRelay(s.db, owner, request.params.name))) throw notFound(`relay ${request.params.app}/${request.params.name}`);
      return reply.status(204).send();
    },
  );
}
