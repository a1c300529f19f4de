import { Type, type Static } from "@sinclair/typebox";
import { ALERT_EVENTS, CHANNEL_TYPES, SMTP_TLS } from "../domain/channel.ts";

/** Request and response schemas of the notification channels (`/v1/channels`). */
const Name = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", description: "lower-case letters, digits, `_ . -`; up to 63" });
const Url = Type.String({ maxLength: 2048 });
const Duration = Type.String({ description: "an integer and a unit: 500ms, 30s, 5m, 2h, 1d" });
const Timestamp = Type.String({ format: "date-time" });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const Condition = Type.String({ pattern: "^[a-z0-9_]{1,100}$" });

const SmtpGiven = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "465 with tls implicit, else 587" })),
    tls: Type.Optional(
      Type.Union(
        SMTP_TLS.map((t) => Type.Literal(t)),
        { description: "implicit (TLS from the start), starttls (required; the default) or none" },
      ),
    ),
    username: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()])),
    password: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()], { description: "shown as ***; *** sent back keeps it" })),
    from: Type.String({ maxLength: 320 }),
    to: Type.Array(Type.String({ maxLength: 320 }), { minItems: 1, maxItems: 50 }),
  },
  { additionalProperties: false },
);
export type SmtpGiven = Static<typeof SmtpGiven>;

const Filter = Type.Object(
  {
    conditions: Type.Optional(
      Type.Union([Type.Array(Condition, { minItems: 1, maxItems: 50 }), Type.Null()], { description: "only these conditions (null: all)" }),
    ),
    events: Type.Optional(
      Type.Union([Type.Array(Type.Union(ALERT_EVENTS.map((e) => Type.Literal(e))), { minItems: 1, maxItems: 3 }), Type.Null()], {
        description: "only these events (null: all)",
      }),
    ),
  },
  { additionalProperties: false },
);
export type FilterGiven = Static<typeof Filter>;

const PerMinute = Type.Integer({ minimum: 1, maximum: 600, description: "notifications per minute at most (default 6)" });
const Retry = Type.Object({ schedule: Type.Array(Duration, { minItems: 1, maxItems: 20 }) }, { additionalProperties: false });

export const CreateChannel = Type.Object(
  {
    name: Name,
    type: Type.Union(CHANNEL_TYPES.map((t) => Type.Literal(t))),
    url: Type.Optional(Url),
    smtp: Type.Optional(SmtpGiven),
    filter: Type.Optional(Filter),
    perMinute: Type.Optional(PerMinute),
    retry: Type.Optional(Retry),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateChannel = Static<typeof CreateChannel>;

export const PatchChannel = Type.Object(
  {
    name: Type.Optional(Name),
    url: Type.Optional(Url),
    smtp: Type.Optional(SmtpGiven),
    filter: Type.Optional(Filter),
    perMinute: Type.Optional(PerMinute),
    retry: Type.Optional(Retry),
    enabled: Type.Optional(Type.Boolean()),
    rotateSecret: Type.Optional(Type.Boolean({ description: "a webhook's new signing secret, shown once" })),
  },
  { additionalProperties: false },
);
export type PatchChannel = Static<typeof PatchChannel>;

export const ChannelParams = Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$" }) });
export type ChannelParams = Static<typeof ChannelParams>;

export const Channel = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    type: Type.String(),
    url: Type.Union([Type.String(), Type.Null()], { description: "a Slack URL with its token masked" }),
    smtp: Type.Union([
      Type.Object({
        host: Type.String(),
        port: Type.Integer(),
        tls: Type.String(),
        username: Type.Union([Type.String(), Type.Null()]),
        password: Type.Union([Type.String(), Type.Null()], { description: "*** when set" }),
        from: Type.String(),
        to: Type.Array(Type.String()),
      }),
      Type.Null(),
    ]),
    filter: Type.Object({ conditions: Type.Union([Type.Array(Type.String()), Type.Null()]), events: Type.Union([Type.Array(Type.String()), Type.Null()]) }),
    perMinute: Type.Integer(),
    retry: Type.Object({ schedule: Type.Array(Type.String()) }),
    enabled: Type.Boolean(),
    state: Type.Object({
      waiting: Type.Integer({ description: "alert events not told of yet (at most 10000 counted)" }),
      failures: Type.Integer({ description: "failed notifications in a row" }),
      lastError: Type.Union([Type.String(), Type.Null()]),
      lastErrorAt: NullableTimestamp,
      lastSentAt: NullableTimestamp,
      nextAttemptAt: NullableTimestamp,
      sent: Type.Integer(),
    }),
    recent: Type.Optional(
      Type.Array(Type.Object({ at: Timestamp, events: Type.Integer(), ok: Type.Boolean(), error: Type.Union([Type.String(), Type.Null()]) }), {
        description: "its last 10 notifications, newest first",
      }),
    ),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    secret: Type.Optional(Type.String({ description: "a webhook's signing secret: shown once" })),
  },
  { $id: "Channel" },
);

export const ChannelTestResult = Type.Object({
  ok: Type.Boolean(),
  statusCode: Type.Union([Type.Integer(), Type.Null()], { description: "the HTTP status, or the SMTP server's reply code" }),
  error: Type.Union([Type.String(), Type.Null()]),
  latencyMs: Type.Integer(),
});
