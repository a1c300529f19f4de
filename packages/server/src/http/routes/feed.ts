import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { invalid, TidingsError } from "../../domain/errors.ts";
import { decodeFeedCursor, encodeFeedCursor, FEED_START } from "../../domain/feedCursor.ts";
import { stringifyExact } from "../../domain/rawJson.ts";
import { feedPage, feedSeekMarginMs, feedStart, type FeedFilter } from "../../store/feed.ts";
import { getSubscription } from "../../store/subscriptions.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody } from "../schemas.ts";
import { pageLimit } from "../paging.ts";

/** A page's default size and the most one may ask for. */
const DEFAULT_LIMIT = 500;
const MAX_LIMIT = 5000;

const FeedQuery = Type.Object(
  {
    topic: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$", description: "the topic's committed messages" })),
    subscription: Type.Optional(
      Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", description: "the committed messages routed to this subscription: its topic and tags" }),
    ),
    after: Type.Optional(Type.String({ maxLength: 80, description: "`next` of the page before; none: from the first message kept" })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,5}$", description: `messages per page, 1–${MAX_LIMIT} (${DEFAULT_LIMIT})` })),
    since: Type.Optional(
      Type.String({
        format: "date-time",
        description: "only messages committed at or after this; with no `after`, the read starts near it, not at the topic's first message",
      }),
    ),
    until: Type.Optional(Type.String({ format: "date-time", description: "only messages committed before this" })),
  },
  { additionalProperties: false },
);
type FeedQuery = Static<typeof FeedQuery>;

const FeedItem = Type.Object(
  {
    id: Type.String({ description: "the message's full id (`<app>/<id>`), as its deliveries carry it" }),
    topic: Type.String(),
    tag: Type.Union([Type.String(), Type.Null()]),
    key: Type.Union([Type.String(), Type.Null()]),
    payload: Type.Unknown(),
    headers: Type.Record(Type.String(), Type.String()),
    createdAt: Type.String({ format: "date-time" }),
    committedAt: Type.String({ format: "date-time" }),
  },
  { $id: "FeedMessage" },
);

/** A time as the database compares it; the schema checked its form, this that it is a real instant. */
function instant(field: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) throw invalid(field, `${field} must be a time with its zone, such as 2026-12-05T08:00:00Z`);
  return at.toISOString();
}

export function feedRoutes(app: FastifyInstance, s: RouteServices): void {
  app.get<{ Querystring: FeedQuery }>(
    "/v1/feed",
    {
      config: { auth: "app" },
      schema: {
        tags: ["messages"],
        summary: "Committed messages in the order they committed, oldest first, with a cursor that skips none",
        description:
          "Give `topic` or `subscription`. A message takes its place when it becomes committed (accepted committed, or committed from prepared) and appears once every transaction that began before that has ended, so a reader that follows `next` sees each message once, a late-committing prepared message included. `more: false` means the reader has everything committed so far: keep `next` and ask again later. A page may hold fewer than `limit` messages while `more` is true (`since`, `until`, tags or an app's view pass over messages; the byte budget TIDINGS_LIST_BYTES ends a page early). An app reads its own messages and every message of its `readTopics`; people with a role read all.",
        querystring: FeedQuery,
        response: {
          200: Type.Object({
            items: Type.Array(FeedItem),
            next: Type.String(),
            more: Type.Boolean(),
            waiting: Type.Boolean({
              description:
                "with more false: messages are committed but not served yet (an older transaction still runs on the database server); ask again shortly",
            }),
          }),
          "4xx": ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const q = request.query;
      if ((q.topic === undefined) === (q.subscription === undefined)) {
        throw invalid(q.topic === undefined ? "querystring.topic" : "querystring.subscription", "give either topic or subscription (one of them)");
      }
      const limit = pageLimit(q.limit, DEFAULT_LIMIT, MAX_LIMIT);
      const after = q.after === undefined ? FEED_START : decodeFeedCursor(q.after);
      if (!after) throw invalid("querystring.after", "after must be the `next` of an earlier page");
      const since = instant("querystring.since", q.since);
      const until = instant("querystring.until", q.until);
      if (since !== undefined && until !== undefined && since >= until) throw invalid("querystring.until", "until must be after since");
      let topic = q.topic;
      let tags: readonly string[] | undefined;
      if (q.subscription !== undefined) {
        const subscription = await getSubscription(s.db, q.subscription);
        if (!subscription) throw new TidingsError("not_found", `subscription ${q.subscription} not found`, "querystring.subscription");
        topic = subscription.topic;
        tags = subscription.tags ?? undefined;
      }
      // A window read from the start: the first page starts near `since` (see feedStart); the
      // cursor it hands back goes on from there as any other.
      const fromStart = BigInt(after.tx) === 0n && BigInt(after.seq) === 0n;
      const start = fromStart && since !== undefined ? await feedStart(s.db, topic!, since, feedSeekMarginMs(s.config.dbStatementTimeoutMs)) : after;
      const p = request.principal;
      const filter: FeedFilter = {
        topic: topic!,
        tags,
        // An app reads all of a topic it may read, and its own messages of any other.
        ownApp: p.kind === "app" && !p.readTopics.includes(topic!) ? p.app : undefined,
        since,
        until,
        after: start,
        limit,
        maxBytes: s.config.listBytes,
      };
      const page = await feedPage(s.db, filter);
      // The native JSON.stringify, payloads kept as exact text written as such.
      return reply.serializer(stringifyExact).send({ items: page.items, next: encodeFeedCursor(page.next), more: page.more, waiting: page.waiting });
    },
  );
}
