import { aboutSubscription, subscriptionPath } from "./client.ts";
import { type Api, printJson, UsageError } from "./context.ts";
import { showSubscription, showSubscriptions, targetOf } from "./subscriptionViews.ts";
import { defined, json, list, number, pairs, wholeNumber } from "./values.ts";

/** `tidings subscriptions [list|create|update|delete]` and `tidings subscription <name>`. */

export interface PolicyOptions {
  topic?: string;
  endpoint?: string;
  header?: string[];
  tags?: string;
  retry?: string;
  maxAttempts?: string;
  ordering?: string;
  onDead?: string;
  rateLimit?: string;
  maxInFlight?: string;
  pendingAgeAlert?: string;
  body?: string;
}

/** The API's body from the options: `--body`'s fields, then each option given over them. */
function policyBody(o: PolicyOptions): Record<string, unknown> {
  const extra = o.body === undefined ? {} : json("--body", o.body);
  if (typeof extra !== "object" || extra === null || Array.isArray(extra)) throw new UsageError("--body must be a JSON object");
  const headers = pairs("--header", o.header);
  if (headers && o.endpoint === undefined) throw new UsageError("--header goes with --endpoint");
  const retry = defined({ schedule: list(o.retry), maxAttempts: wholeNumber("--max-attempts", o.maxAttempts) });
  return {
    ...extra,
    ...defined({
      topic: o.topic,
      endpoint: o.endpoint === undefined ? undefined : defined({ type: "http", url: o.endpoint, headers }),
      tags: list(o.tags),
      retry: Object.keys(retry).length ? { ...((extra as { retry?: object }).retry ?? {}), ...retry } : undefined,
      ordering: o.ordering,
      onDead: o.onDead,
      rateLimit: number("--rate-limit", o.rateLimit),
      maxInFlight: wholeNumber("--max-in-flight", o.maxInFlight),
      // The service checks the duration; "off" and "default" are the API's false and null.
      pendingAgeAlert: o.pendingAgeAlert === "off" ? false : o.pendingAgeAlert === "default" ? null : o.pendingAgeAlert,
    }),
  };
}

interface Answered {
  name: string;
  topic: string;
  endpoint: Parameters<typeof targetOf>[0];
  enabled: boolean;
  secret?: string;
}

/** What a change answered, for people: the subscription in a line, and its new secret once. */
function said(s: Answered, done: string): string {
  const lines = [`subscription ${s.name} ${done}: ${s.topic} → ${targetOf(s.endpoint)}${s.enabled ? "" : " (paused)"}`];
  if (s.secret) lines.push(`its signing secret, shown this once:\n${s.secret}`);
  return lines.join("\n");
}

export const listSubscriptions = ({ call, json }: Api, options: { topic?: string }) => showSubscriptions(call, { topic: options.topic, json });

export const showOne = ({ call, json }: Api, name: string) => showSubscription(call, name, { json });

export async function createSubscription(api: Api, name: string, options: PolicyOptions & { paused?: boolean }): Promise<void> {
  const body: Record<string, unknown> = { name, ...policyBody(options), ...(options.paused ? { enabled: false } : {}) };
  if (body.topic === undefined) throw new UsageError("--topic is required");
  if (body.endpoint === undefined) throw new UsageError("--endpoint (or an endpoint in --body) is required");
  const created = (await api.call("POST", "/v1/subscriptions", body)).body as unknown as Answered;
  if (api.json) printJson(created);
  else console.log(said(created, "created"));
}

export async function updateSubscription(
  api: Api,
  name: string,
  options: PolicyOptions & { pause?: boolean; resume?: boolean; rotateSecret?: boolean },
): Promise<void> {
  const body = {
    ...policyBody(options),
    ...(options.pause ? { enabled: false } : options.resume ? { enabled: true } : {}),
    ...(options.rotateSecret ? { rotateSecret: true } : {}),
  };
  if (Object.keys(body).length === 0) throw new UsageError("nothing to change: give an option");
  const updated = (await aboutSubscription(name, () => api.call("PATCH", subscriptionPath(name), body))).body as unknown as Answered;
  if (api.json) printJson(updated);
  else console.log(said(updated, "updated"));
}

export async function deleteSubscription(api: Api, name: string): Promise<void> {
  await aboutSubscription(name, () => api.call("DELETE", subscriptionPath(name)));
  if (api.json) printJson({ deleted: name });
  else console.log(`subscription ${name} deleted`);
}
