import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { conflict, invalid, notFound } from "../../domain/errors.ts";
import {
  ChannelInputError,
  checkSmtp,
  compileChannelRetry,
  DEFAULT_PER_MINUTE,
  MASK,
  maskSlackUrl,
  showRetry,
  type ChannelFilter,
  type ChannelRow,
  type ChannelSettings,
  type SmtpSettings,
} from "../../domain/channel.ts";
import { newSigningSecret } from "../../transports/signature.ts";
import { createChannel, deleteChannel, getChannel, listChannels, recentNotifications, updateChannel, waitingEvents } from "../../store/channels.ts";
import type { RouteServices } from "../routeServices.ts";
import { noteAudit } from "../audit.ts";
import { configChange, handAction } from "../../domain/audit.ts";
import { ErrorBody } from "../schemas.ts";
import { Channel, ChannelParams, ChannelTestResult, CreateChannel, PatchChannel, type FilterGiven, type SmtpGiven } from "../channelSchemas.ts";

/** Refusals of the domain's checks as 400s naming the field. */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ChannelInputError) throw invalid(error.field, error.message);
    throw error;
  }
}

/** A channel as the API shows it: every secret masked (a webhook's is shown once, when issued). */
export function showChannel(row: ChannelRow, waiting: number, extra: { secret?: string; recent?: unknown[] } = {}) {
  const smtp = row.type === "email" ? (row.settings as SmtpSettings) : null;
  const url = row.type === "slack" ? maskSlackUrl(row.secret ?? "") : row.type === "webhook" ? (row.settings as { url: string }).url : null;
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    url,
    smtp: smtp && { ...smtp, to: [...smtp.to], password: row.secret === null ? null : MASK },
    filter: { conditions: row.filter.conditions && [...row.filter.conditions], events: row.filter.events && [...row.filter.events] },
    perMinute: row.perMinute,
    retry: showRetry(row.retrySchedule),
    enabled: row.enabled,
    state: {
      waiting,
      failures: row.failures,
      lastError: row.lastError,
      lastErrorAt: row.lastErrorAt?.toISOString() ?? null,
      lastSentAt: row.lastSentAt?.toISOString() ?? null,
      // Only while something is held back (a failure's retry or the rate limit).
      nextAttemptAt: row.notBefore.getTime() > Date.now() ? row.notBefore.toISOString() : null,
      sent: row.sent,
    },
    ...(extra.recent ? { recent: extra.recent } : {}),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    ...(extra.secret ? { secret: extra.secret } : {}),
  };
}

const filterOf = (given: FilterGiven | undefined): ChannelFilter => ({ conditions: given?.conditions ?? null, events: given?.events ?? null });

/** The notification channels (admin): where people are told about alerts. */
export function channelRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["channels"];
  // Reading channels is for every person; a test send for operators; the configuration for admins.
  const config = { auth: "admin" } as const;
  const read = { auth: "viewer" } as const;

  /** The URL of a webhook or Slack channel: http(s), through the network policy. */
  const target = (url: string | undefined): string => {
    if (url === undefined) throw invalid("url", "url is required for a webhook or slack channel");
    return s.checkEndpointUrl(url, "url");
  };
  /** SMTP settings, their server through the network policy; the password apart. */
  const smtpOf = (given: SmtpGiven): SmtpSettings => {
    const smtp = checked(() => checkSmtp(given));
    const host = smtp.host.includes(":") && !smtp.host.startsWith("[") ? `[${smtp.host}]` : smtp.host;
    s.checkEndpointUrl(`http://${host}:${smtp.port}/`, "smtp.host");
    return smtp;
  };
  const byId = async (id: string): Promise<ChannelRow> => {
    const row = await getChannel(s.db, Number(id));
    if (!row) throw notFound(`channel ${id}`);
    return row;
  };

  app.post<{ Body: CreateChannel }>(
    "/v1/channels",
    {
      config: { ...config, audit: configChange("channel.create") },
      schema: {
        tags,
        summary: "Add a notification channel; a webhook's signing secret is shown once",
        body: CreateChannel,
        response: { 201: Channel, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const b = request.body;
      let settings: ChannelSettings;
      let secret: string | null;
      if (b.type === "email") {
        if (b.url !== undefined) throw invalid("url", "an email channel has smtp settings, not a url");
        if (b.smtp === undefined) throw invalid("smtp", "smtp is required for an email channel");
        settings = smtpOf(b.smtp);
        secret = b.smtp.password ?? null;
      } else {
        if (b.smtp !== undefined) throw invalid("smtp", `a ${b.type} channel has a url, not smtp settings`);
        const url = target(b.url);
        // A Slack URL's path is its token: the whole URL is kept as the secret.
        settings = b.type === "slack" ? { url: null } : { url };
        secret = b.type === "slack" ? url : newSigningSecret();
      }
      const created = await createChannel(s.db, {
        name: b.name,
        type: b.type,
        settings,
        secret,
        filter: filterOf(b.filter),
        perMinute: b.perMinute ?? DEFAULT_PER_MINUTE,
        retrySchedule: checked(() => compileChannelRetry(b.retry?.schedule)),
        enabled: b.enabled ?? true,
      });
      if (!created) throw conflict(`a channel named ${b.name} exists`);
      // By its id, as its changes and its deletion are recorded.
      noteAudit(request, { target: `channel/${created.id}` });
      return reply.status(201).send(showChannel(created, 0, b.type === "webhook" ? { secret: secret! } : {}));
    },
  );

  app.get(
    "/v1/channels",
    {
      config: read,
      schema: { tags, summary: "List the notification channels, with their state", response: { 200: Type.Object({ items: Type.Array(Channel) }) } },
    },
    async () => {
      const [rows, waiting] = await Promise.all([listChannels(s.db), waitingEvents(s.db)]);
      return { items: rows.map((row) => showChannel(row, waiting.get(row.id) ?? 0)) };
    },
  );

  app.get<{ Params: ChannelParams }>(
    "/v1/channels/:id",
    {
      config: read,
      schema: {
        tags,
        summary: "A notification channel, its state and its last notifications",
        params: ChannelParams,
        response: { 200: Channel, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const row = await byId(request.params.id);
      const [waiting, recent] = await Promise.all([waitingEvents(s.db), recentNotifications(s.db, row.id, 10)]);
      return showChannel(row, waiting.get(row.id) ?? 0, { recent });
    },
  );

  app.patch<{ Params: ChannelParams; Body: PatchChannel }>(
    "/v1/channels/:id",
    {
      config: { ...config, audit: configChange("channel.update") },
      schema: {
        tags,
        summary: "Change a channel; what the API showed masked (***) keeps the stored value; `enabled: false` stops it",
        params: ChannelParams,
        body: PatchChannel,
        response: { 200: Channel, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const b = request.body;
      const current = await byId(request.params.id);
      noteAudit(request, { before: showChannel(current, 0) });
      let settings: ChannelSettings | undefined;
      let secret: string | null | undefined;
      if (b.url !== undefined) {
        if (current.type === "email") throw invalid("url", "an email channel has smtp settings, not a url");
        if (current.type === "slack") {
          // The masked URL sent back means "keep it".
          if (b.url !== maskSlackUrl(current.secret ?? "")) secret = target(b.url);
        } else settings = { url: target(b.url) };
      }
      if (b.smtp !== undefined) {
        if (current.type !== "email") throw invalid("smtp", `a ${current.type} channel has a url, not smtp settings`);
        settings = smtpOf(b.smtp);
        if (b.smtp.password !== MASK) secret = b.smtp.password ?? null;
      }
      let issued: string | undefined;
      if (b.rotateSecret) {
        if (current.type !== "webhook") throw invalid("rotateSecret", "only a webhook channel has a signing secret");
        issued = secret = newSigningSecret();
      }
      let row: ChannelRow | null;
      try {
        row = await updateChannel(s.db, current.id, {
          name: b.name,
          settings,
          secret,
          filter: b.filter && filterOf(b.filter),
          perMinute: b.perMinute,
          retrySchedule: b.retry && checked(() => compileChannelRetry(b.retry!.schedule)),
          enabled: b.enabled,
        });
      } catch (error) {
        if ((error as { code?: string }).code === "23505") throw conflict(`a channel named ${b.name} exists`);
        throw error;
      }
      if (!row) throw notFound(`channel ${request.params.id}`);
      s.notifier.wake();
      const waiting = await waitingEvents(s.db);
      return showChannel(row, waiting.get(row.id) ?? 0, issued ? { secret: issued } : {});
    },
  );

  app.delete<{ Params: ChannelParams }>(
    "/v1/channels/:id",
    { config: { ...config, audit: configChange("channel.delete") }, schema: { tags, summary: "Delete a notification channel", params: ChannelParams } },
    async (request, reply) => {
      const current = await getChannel(s.db, Number(request.params.id));
      if (current) noteAudit(request, { before: showChannel(current, 0) });
      if (!(await deleteChannel(s.db, Number(request.params.id)))) throw notFound(`channel ${request.params.id}`);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: ChannelParams }>(
    "/v1/channels/:id/test",
    {
      config: { auth: "operator", audit: handAction("channel.test") },
      schema: {
        tags,
        summary: "Send a test notification now and answer what happened (outside the channel's rate limit and retries)",
        params: ChannelParams,
        response: { 200: ChannelTestResult, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const row = await byId(request.params.id);
      return s.notifier.test(row);
    },
  );
}
