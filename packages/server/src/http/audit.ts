import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { redact, type AuditEntry, type AuditSpec } from "../domain/audit.ts";
import { TidingsError } from "../domain/errors.ts";
import { actorName } from "../domain/roles.ts";
import { appendAudit } from "../store/auditLog.ts";
import type { Db } from "../store/db.ts";

/** What a handler adds to its route's audit entry (all optional: the route's declaration says the rest). */
export interface AuditNote {
  /** `<object>/<name or id>`; by default the route's object and its `:name`/`:id` (or the body's `name`). */
  target?: string;
  /** The configuration object before the change, as the API shows it. */
  before?: unknown;
  detail?: Record<string, unknown>;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Record each successful call in the audit log (see `configChange`, `handAction`). */
    audit?: AuditSpec;
  }
  interface FastifyRequest {
    auditNote?: AuditNote;
  }
}

/** Adds to the audit entry of the request's route: one line in a handler. */
export function noteAudit(request: FastifyRequest, note: AuditNote): void {
  request.auditNote = { ...request.auditNote, ...note, detail: { ...request.auditNote?.detail, ...note.detail } };
}

function parsed(payload: unknown): unknown {
  if (typeof payload !== "string" || payload === "") return null;
  try {
    return JSON.parse(payload);
  } catch {
    return null;
  }
}

/** A hand action's answer as recorded: a message's payload is its producer's business, not the log's. */
function outcome(answer: unknown): unknown {
  if (answer === null || typeof answer !== "object" || Array.isArray(answer)) return answer;
  const { payload: _payload, ...rest } = answer as Record<string, unknown>;
  return rest;
}

function defaultTarget(spec: AuditSpec, request: FastifyRequest): string | null {
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  const name = params.name ?? params.id ?? (request.body as { name?: unknown } | undefined)?.name;
  return typeof name === "string" ? `${spec.action.split(".")[0]}/${name}` : null;
}

/** The entry for a call that succeeded with `payload` as its answer. */
function entryOf(spec: AuditSpec, request: FastifyRequest, reply: FastifyReply, payload: unknown): AuditEntry {
  const p = request.principal;
  const note = request.auditNote ?? {};
  const answer = reply.statusCode === 204 ? null : parsed(payload);
  const body = (request.method === "GET" || request.method === "DELETE" ? null : request.body) as Record<string, unknown> | null;
  // A hand action's options (subscription, reason, window…); of a configuration change only what
  // its after cannot show (a rotated key or secret): the after shows the rest.
  const given = body && typeof body === "object" ? Object.entries(body).filter(([name]) => spec.kind === "hand" || name.startsWith("rotate")) : [];
  const options = given.length > 0 ? { request: Object.fromEntries(given) } : {};
  return {
    actorKind: p.kind,
    actor: actorName(p),
    address: request.ip ?? null,
    action: spec.action,
    target: note.target ?? defaultTarget(spec, request),
    before: spec.kind === "config" ? redact(note.before ?? null) : null,
    // A deletion has no after; a change's after is the object as the answer shows it.
    after: spec.kind === "config" && request.method !== "DELETE" ? redact(answer) : null,
    detail: redact({ ...options, ...note.detail, ...(spec.kind === "hand" && answer !== null ? { result: outcome(answer) } : {}) }),
  };
}

/**
 * Writes an audit entry for every successful call of a route that declares `config.audit`, right
 * after the change and before the answer leaves. If the entry cannot be written, the answer is
 * 500 `audit_failed` saying the change was made but not recorded, and the entry goes to the log
 * at error level: a change is never left unrecorded without someone being told.
 */
export function recordAudit(app: FastifyInstance, db: Db, log: Logger): void {
  const written = new WeakSet<FastifyRequest>();
  app.addHook("onSend", async (request, reply, payload) => {
    const spec = request.routeOptions.config.audit;
    if (!spec || reply.statusCode >= 300 || !request.principal || written.has(request)) return payload;
    if (spec.peopleOnly && request.principal.kind === "app") return payload;
    written.add(request);
    const entry = entryOf(spec, request, reply, payload);
    try {
      await appendAudit(db, entry);
    } catch (error) {
      log.error({ err: error, audit: entry }, "audit entry not written: the change was made");
      throw new TidingsError(
        "audit_failed",
        `${spec.action} was done, but its audit entry could not be written (it is in the service's log); tell the service's administrator`,
      );
    }
    return payload;
  });
}
