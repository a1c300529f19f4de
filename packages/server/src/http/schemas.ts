import { Type, type Static, type TNull, type TSchema, type TUnion } from "@sinclair/typebox";
import { ERROR_CODES, type ServiceErrorCode } from "./errors.ts";

/**
 * Request and response schemas: the one source of request types (Static<>), of validation
 * (Fastify's Ajv) and of the OpenAPI document (@fastify/swagger).
 */
export const Name = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", description: "lower-case letters, digits, `_ . -`; up to 63" });
const Topic = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$" });
const Tag = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$" });
const MessageId = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.:@=+-]{0,199}$", description: "the producer's idempotency key" });
const Duration = Type.String({ description: "an integer and a unit: 500ms, 30s, 5m, 2h, 1d" });
const Url = Type.String({ maxLength: 2048 });
const StringMap = Type.Record(Type.String({ maxLength: 200 }), Type.String({ maxLength: 4000 }), { maxProperties: 50 });
const Timestamp = Type.String({ format: "date-time" });
/**
 * A value or null. A schema of one primitive type becomes `type: [T, "null"]` rather than an
 * `anyOf`: the response serializer tells those apart with a `typeof` instead of running a
 * validator per field (for a date-time, a format check per timestamp of every message).
 */
const Nullable = <T extends TSchema>(schema: T): TUnion<[T, TNull]> => {
  const type = (schema as { type?: unknown }).type;
  if (typeof type === "string" && type !== "object" && type !== "array" && !("anyOf" in schema)) {
    return Type.Unsafe<Static<T> | null>({ ...schema, type: [type, "null"] }) as unknown as TUnion<[T, TNull]>;
  }
  return Type.Union([schema, Type.Null()]);
};

/** One of the service's error codes (a plain string to the serializer: no check per answer). */
const ErrorCodeSchema = Type.Unsafe<ServiceErrorCode>({ type: "string", enum: [...ERROR_CODES], description: "stable: match on it, never on the message" });

export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: ErrorCodeSchema,
        message: Type.String(),
        field: Type.Optional(Type.String({ description: "the request field at fault" })),
        state: Type.Optional(Type.String({ description: "409 on commit/rollback: the message's current state" })),
      },
      { additionalProperties: true },
    ),
  },
  { $id: "Error" },
);

// ---- apps
const ReadTopics = Type.Array(Topic, { maxItems: 100, description: "topics whose messages this app may read (to reconcile what it consumes)" });
export const CreateApp = Type.Object(
  { name: Name, checkUrl: Type.Optional(Nullable(Url)), readTopics: Type.Optional(ReadTopics) },
  { additionalProperties: false },
);
export type CreateApp = Static<typeof CreateApp>;
export const PatchApp = Type.Object(
  {
    checkUrl: Type.Optional(Nullable(Url)),
    readTopics: Type.Optional(ReadTopics),
    enabled: Type.Optional(
      Type.Boolean({
        description: "false disables the app: its key is refused with 403 app_disabled until set true again; its messages are still delivered and checked back",
      }),
    ),
    rotateKey: Type.Optional(Type.Boolean({ description: "issue a new API key (the old one stops working); shown once" })),
    rotateSecret: Type.Optional(Type.Boolean({ description: "issue a new check-back signing secret; shown once" })),
  },
  { additionalProperties: false },
);
export type PatchApp = Static<typeof PatchApp>;
export const App = Type.Object(
  {
    name: Type.String(),
    checkUrl: Nullable(Type.String()),
    readTopics: Type.Array(Type.String()),
    enabled: Type.Boolean({ description: "false while disabled: the app's key is refused with 403 app_disabled" }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  },
  { $id: "App" },
);
export const AppCreated = Type.Intersect([App, Type.Object({ apiKey: Type.String(), secret: Type.String() })]);
export const AppChanged = Type.Intersect([App, Type.Object({ apiKey: Type.Optional(Type.String()), secret: Type.Optional(Type.String()) })]);
export const NameParams = Type.Object({ name: Type.String({ maxLength: 100 }) });
export type NameParams = Static<typeof NameParams>;

// ---- subscriptions
export const HttpEndpoint = Type.Object({ type: Type.Literal("http"), url: Url, headers: Type.Optional(StringMap) }, { additionalProperties: false });
const Template = (description: string) => Type.String({ minLength: 1, maxLength: 255, description });
export const RabbitmqEndpoint = Type.Object(
  {
    type: Type.Literal("rabbitmq"),
    url: Type.String({ maxLength: 2048, description: "amqp(s)://user:pass@host:port/vhost" }),
    exchange: Type.String({ maxLength: 255, pattern: "^[A-Za-z0-9_.:/-]*$", description: '"" is the default exchange' }),
    routingKey: Type.Optional(Template("template with {topic}, {tag}, {key}; default {topic}")),
  },
  { additionalProperties: false },
);
export const NatsEndpoint = Type.Object(
  {
    type: Type.Literal("nats"),
    url: Type.String({ maxLength: 2048, description: "nats://[user:pass@|token@]host:port" }),
    subject: Type.String({ minLength: 1, maxLength: 255, pattern: "^[^\\s*>]+$", description: "JetStream subject; template with {topic}, {tag}, {key}" }),
  },
  { additionalProperties: false },
);
export const RedisEndpoint = Type.Object(
  {
    type: Type.Literal("redis"),
    url: Type.String({ maxLength: 2048, description: "redis(s)://[user:pass@]host:port[/db]" }),
    stream: Type.String({ minLength: 1, maxLength: 512 }),
    maxLen: Type.Optional(Type.Integer({ minimum: 1, description: "trim with MAXLEN ~ this" })),
  },
  { additionalProperties: false },
);
const ENDPOINT_TYPES = { http: HttpEndpoint, rabbitmq: RabbitmqEndpoint, nats: NatsEndpoint, redis: RedisEndpoint };
/**
 * One of the endpoint objects, chosen by `type`. Written as if/then rather than anyOf so that a
 * bad field is reported against the chosen type (`endpoint.exchange is required`), not as a
 * failed match of every alternative.
 */
export const Endpoint = Type.Unsafe<Static<(typeof ENDPOINT_TYPES)[keyof typeof ENDPOINT_TYPES]>>({
  type: "object",
  required: ["type"],
  properties: { type: { type: "string", enum: Object.keys(ENDPOINT_TYPES) } },
  // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keywords, read by the validator; the object is never awaited
  allOf: Object.entries(ENDPOINT_TYPES).map(([type, schema]) => ({ if: { properties: { type: { const: type } } }, then: schema })),
});
export const RetryOptions = Type.Object(
  {
    schedule: Type.Optional(Type.Array(Duration, { maxItems: 100 })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    window: Type.Optional(Duration),
  },
  { additionalProperties: false },
);
export type RetryOptions = Static<typeof RetryOptions>;
const Tags = Type.Array(Tag, { minItems: 1, maxItems: 100 });
const MaxInFlight = Type.Integer({
  minimum: 1,
  maximum: 10_000,
  description:
    "a hard limit on this subscription's deliveries in flight at once, across all service processes; null or absent: the service's fair share per process (TIDINGS_SUBSCRIPTION_MAX_IN_FLIGHT)",
});
const Ordering = Type.Union([Type.Literal("none"), Type.Literal("key")], {
  description:
    '"key": the deliveries of messages sharing a key go one at a time, in the order the messages became deliverable (keyless messages are not ordered); "none" (default): any order',
});
const OnDead = Type.Union([Type.Literal("block"), Type.Literal("skip")], {
  description:
    'with ordering "key": a dead delivery holds its key, with a key_blocked alert, until it is re-sent, skipped or its message deleted ("block", default), or the next goes at once ("skip")',
});
const RateLimit = Type.Number({
  exclusiveMinimum: 0,
  maximum: 100_000,
  description: "attempts per second, across all service processes (a token bucket of a fifth of a second's worth); null or absent: no limit",
});
const CircuitOptions = Type.Union(
  [
    Type.Object(
      {
        failures: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 1_000_000,
            description: "failed attempts in a row that open the circuit (default 20, or none when failureRatio is given; both set: either opens it)",
          }),
        ),
        failureRatio: Type.Optional(
          Type.Number({
            exclusiveMinimum: 0,
            maximum: 1,
            description: "the share of attempts in a window that, failed, opens the circuit: more than 0, at most 1 (e.g. 0.5); absent: no ratio",
          }),
        ),
        window: Type.Optional({
          ...Duration,
          description: "with failureRatio: the window attempts are counted in, tumbling (1s or more; default 60s)",
        }),
        minAttempts: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 1_000_000,
            description: "with failureRatio: the ratio counts once the window holds this many attempts (default 20)",
          }),
        ),
        probeEvery: Type.Optional({ ...Duration, description: "while open, one probe delivery this often, across all nodes (default 30s)" }),
        pauseAfter: Type.Optional(Nullable({ ...Duration, description: "open this long, the subscription is paused with an alert (default 3d); null: never" })),
      },
      { additionalProperties: false },
    ),
    Type.Null(),
    Type.Literal(false),
  ],
  { description: "the circuit breaker; absent: the defaults; null or false: no breaker" },
);
export type CircuitOptions = Static<typeof CircuitOptions>;
const PendingAgeAlert = Type.Union([Type.String({ maxLength: 20 }), Type.Literal(false), Type.Null()], {
  description:
    "a pending_too_old alert when the subscription's oldest pending delivery has waited longer than this duration (1s to 30d, e.g. 15m); false: no such alert for it; null or absent: the service's default (TIDINGS_ALERT_PENDING_AGE)",
});
const SubscriptionHealth = Type.Object(
  {
    state: Type.String({ description: "closed, open (deliveries wait; one probe at intervals) or half_open (a probe in flight)" }),
    consecutiveFailures: Type.Integer(),
    openedAt: Nullable(Timestamp),
    nextProbeAt: Nullable(Timestamp),
    closedAt: Nullable(Timestamp),
    throttledUntil: Nullable({ ...Timestamp, description: "a receiver's 429 Retry-After: nothing of the subscription is sent before" }),
    window: Nullable(
      Type.Object(
        { startedAt: Timestamp, attempts: Type.Integer(), failures: Type.Integer() },
        { description: "with a failure ratio: the window being counted (it ends a window's length after startedAt); null: none yet" },
      ),
    ),
    opens: Type.Integer({ description: "times the circuit opened" }),
    history: Type.Array(
      Type.Object({
        event: Type.String({ description: "opened, closed, auto_paused or reset" }),
        at: Timestamp,
        detail: Type.String(),
      }),
      { description: "the last 20 transitions, newest first" },
    ),
  },
  { $id: "SubscriptionHealth" },
);
export const CreateSubscription = Type.Object(
  {
    name: Name,
    topic: Topic,
    tags: Type.Optional(Nullable(Tags)),
    endpoint: Endpoint,
    retry: Type.Optional(RetryOptions),
    enabled: Type.Optional(Type.Boolean()),
    maxInFlight: Type.Optional(Nullable(MaxInFlight)),
    ordering: Type.Optional(Ordering),
    onDead: Type.Optional(OnDead),
    circuit: Type.Optional(CircuitOptions),
    rateLimit: Type.Optional(Nullable(RateLimit)),
    pendingAgeAlert: Type.Optional(PendingAgeAlert),
  },
  { additionalProperties: false },
);
export type CreateSubscription = Static<typeof CreateSubscription>;
export const PatchSubscription = Type.Object(
  {
    topic: Type.Optional(Topic),
    tags: Type.Optional(Nullable(Tags)),
    endpoint: Type.Optional(Endpoint),
    retry: Type.Optional(RetryOptions),
    enabled: Type.Optional(Type.Boolean()),
    maxInFlight: Type.Optional(Nullable(MaxInFlight)),
    ordering: Type.Optional(Ordering),
    onDead: Type.Optional(OnDead),
    circuit: Type.Optional(CircuitOptions),
    rateLimit: Type.Optional(Nullable(RateLimit)),
    pendingAgeAlert: Type.Optional(PendingAgeAlert),
    rotateSecret: Type.Optional(Type.Boolean({ description: "issue a new signing secret, returned once" })),
  },
  { additionalProperties: false },
);
export type PatchSubscription = Static<typeof PatchSubscription>;
export const Subscription = Type.Object(
  {
    name: Type.String(),
    topic: Type.String(),
    tags: Nullable(Type.Array(Type.String())),
    endpoint: Type.Object({
      type: Type.String(),
      url: Type.String({ description: "broker URLs with the password masked: amqp://user:***@host" }),
      headers: Type.Optional(StringMap),
      exchange: Type.Optional(Type.String()),
      routingKey: Type.Optional(Type.String()),
      subject: Type.Optional(Type.String()),
      stream: Type.Optional(Type.String()),
      maxLen: Type.Optional(Type.Integer()),
    }),
    retry: Type.Object({ schedule: Type.Array(Type.String()), maxAttempts: Type.Integer(), window: Nullable(Type.String()) }),
    enabled: Type.Boolean(),
    circuitState: Type.Optional(
      Type.Union([Type.Literal("closed"), Type.Literal("open"), Type.Literal("half_open")], {
        description: "in lists: the circuit's state (its details in `health`)",
      }),
    ),
    maxInFlight: Nullable(Type.Integer({ description: "null: the service default" })),
    rateLimit: Nullable(Type.Number({ description: "attempts per second across all nodes; null: none" })),
    ordering: Ordering,
    onDead: OnDead,
    pendingAgeAlert: Type.Union([Type.String(), Type.Literal(false), Type.Null()], {
      description: "the age of the oldest pending delivery that raises a pending_too_old alert; false: none; null: the service's default",
    }),
    circuit: Nullable(
      Type.Object({
        failures: Nullable(Type.Integer({ description: "null: only the failure ratio opens it" })),
        failureRatio: Nullable(Type.Number({ description: "null: no ratio" })),
        window: Nullable(Type.String()),
        minAttempts: Nullable(Type.Integer()),
        probeEvery: Type.String(),
        pauseAfter: Nullable(Type.String()),
      }),
    ),
    health: Type.Optional(SubscriptionHealth),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    secret: Type.Optional(Type.String({ description: "only when created or rotated" })),
  },
  { $id: "Subscription" },
);
export const ResendDead = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
export type ResendDead = Static<typeof ResendDead>;
export const Recover = Type.Object(
  {
    since: Type.String({ format: "date-time", description: "re-send deliveries of messages created at or after this time" }),
    until: Type.Optional(Type.String({ format: "date-time", description: "… and before this time (absent: up to now)" })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
export type Recover = Static<typeof Recover>;
export const RetriedPending = Type.Object({ retried: Type.Integer({ description: "pending deliveries made due now" }) });

// ---- messages
export const NewMessage = Type.Object(
  {
    id: Type.Optional(MessageId),
    topic: Topic,
    tag: Type.Optional(Nullable(Tag)),
    key: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
    payload: Type.Unknown({ description: "any JSON value" }),
    headers: Type.Optional(StringMap),
    delay: Type.Optional(Duration),
    deliverAt: Type.Optional(Timestamp),
    prepare: Type.Optional(Type.Boolean({ description: "store a half message: invisible to subscribers until committed" })),
    checkAfter: Type.Optional(Duration),
    checkContext: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          "prepared messages only: sent back as `context` in the body of each check-back (the SDK's transaction() sends its database's identity, so that a check reaching another database is refused). Not part of the message's content",
      }),
    ),
    traceparent: Type.Optional(
      Type.String({
        maxLength: 256,
        pattern: "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$",
        description:
          "W3C trace context the message was sent in (what an outbox relay sends for each row); absent: the request's `traceparent` header's. Not part of the message's content",
      }),
    ),
    tracestate: Type.Optional(Type.String({ maxLength: 512, description: "W3C tracestate going with `traceparent`" })),
  },
  { additionalProperties: false, required: ["topic", "payload"] },
);
export type NewMessage = Static<typeof NewMessage>;
export const MessageBatch = Type.Object(
  {
    messages: Type.Array(NewMessage, { minItems: 1, maxItems: 1000 }),
    atomic: Type.Optional(Type.Boolean({ description: "true (default): all or nothing, 409 on any conflict; false: each message on its own, see outcomes" })),
  },
  { additionalProperties: false },
);
export type MessageBatch = Static<typeof MessageBatch>;
export const Delivery = Type.Object(
  {
    id: Type.Integer({ description: "the delivery's id (for POST /v1/deliveries/:id/skip)" }),
    subscription: Type.String(),
    state: Type.String(),
    attempts: Type.Integer(),
    nextAttemptAt: Nullable(Timestamp),
    lastStatus: Nullable(Type.Integer()),
    lastError: Nullable(Type.String()),
    deliveredAt: Nullable(Timestamp),
    deadAt: Nullable(Timestamp),
    deadReason: Nullable(Type.String()),
    outcome: Nullable(
      Type.String({ description: "what the consumer reported (POST /v1/outcomes): applied, duplicate or failed; null when it reported nothing" }),
    ),
    outcomeAt: Nullable(Timestamp),
    outcomeError: Nullable(Type.String({ description: "a failed outcome's error" })),
  },
  { $id: "Delivery" },
);
export const Message = Type.Object(
  {
    id: Type.String(),
    app: Nullable(Type.String()),
    topic: Type.String(),
    tag: Nullable(Type.String()),
    key: Nullable(Type.String()),
    payload: Type.Unknown(),
    headers: StringMap,
    state: Type.String(),
    deliverAt: Timestamp,
    createdAt: Timestamp,
    committedAt: Nullable(Timestamp),
    rolledBackAt: Nullable(Timestamp),
    checks: Type.Integer({ description: "check-backs made while prepared" }),
    nextCheckAt: Nullable(Timestamp),
    inDoubtAt: Nullable(Timestamp),
    completedAt: Type.Optional(Nullable({ ...Timestamp, description: "when every delivery's consumer reported it applied (or duplicate)" })),
    deliveries: Type.Optional(Type.Array(Delivery)),
  },
  { $id: "Message" },
);
export const CommitMany = Type.Object({ ids: Type.Array(MessageId, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false });
export type CommitMany = Static<typeof CommitMany>;
export const CommitResult = Type.Object(
  {
    id: Type.String(),
    state: Type.Optional(Type.String({ description: "committed" })),
    error: Type.Optional(
      Type.Object(
        { code: ErrorCodeSchema, message: Type.String(), state: Type.Optional(Type.String({ description: "conflict: the message's current state" })) },
        { additionalProperties: true },
      ),
    ),
  },
  { $id: "CommitResult" },
);
export const MessageIdParams = Type.Object({ id: Type.String({ maxLength: 200 }) });
export const LookupMessages = Type.Object(
  {
    ids: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
      minItems: 1,
      maxItems: 1000,
      description: "as `GET /v1/messages/:id` takes them: the caller's own (bare) ids, or full ids `<app>/<id>`",
    }),
  },
  { additionalProperties: false },
);
export type LookupMessages = Static<typeof LookupMessages>;
export const MessageLookup = Type.Object(
  {
    found: Type.Array(Type.Object({ id: Type.String(), state: Type.String() }), {
      description: "the ids asked (as asked, in their order) of messages the caller may read, with their state",
    }),
    missing: Type.Array(Type.String(), { description: "the other ids asked, in their order: no such message, or one the caller may not read" }),
  },
  { $id: "MessageLookup" },
);
export type MessageIdParams = Static<typeof MessageIdParams>;
export const ListMessagesQuery = Type.Object(
  {
    id: Type.Optional(
      Type.String({
        maxLength: 300,
        description: "a message id: the caller's own (bare), or a full id `<app>/<id>`; the admin's bare id finds that id in every app",
      }),
    ),
    topic: Type.Optional(Type.String()),
    key: Type.Optional(Type.String()),
    tag: Type.Optional(Type.String()),
    app: Type.Optional(Type.String()),
    createdAfter: Type.Optional(Timestamp),
    createdBefore: Type.Optional(Timestamp),
    state: Type.Optional(Type.Union([Type.Literal("prepared"), Type.Literal("committed"), Type.Literal("rolled_back"), Type.Literal("in_doubt")])),
    subscription: Type.Optional(Type.String()),
    deliveryState: Type.Optional(Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("dead")])),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);
export type ListMessagesQuery = Static<typeof ListMessagesQuery>;
export const SubscriptionTarget = Type.Object(
  { subscription: Type.Optional(Type.String()), reason: Type.Optional(Type.String({ maxLength: 1000 })) },
  { additionalProperties: false },
);
export type SubscriptionTarget = Static<typeof SubscriptionTarget>;
export const Check = Type.Object(
  {
    at: Timestamp,
    check: Type.Integer(),
    statusCode: Nullable(Type.Integer()),
    answer: Nullable(Type.String()),
    latencyMs: Type.Integer(),
    error: Nullable(Type.String()),
  },
  { $id: "Check" },
);
export const Attempt = Type.Object(
  {
    at: Timestamp,
    subscription: Type.String(),
    attempt: Type.Integer(),
    outcome: Type.String(),
    statusCode: Nullable(Type.Integer()),
    latencyMs: Type.Integer(),
    error: Nullable(Type.String()),
  },
  { $id: "Attempt" },
);
