import type { LeasedDelivery } from "../domain/delivery.ts";

/**
 * What travels beside the envelope in a broker's headers (AMQP headers, NATS headers, Redis
 * stream fields), so consumers can route, filter and de-duplicate without parsing the body, and
 * report what they did with it by the subscription's name.
 * Absent tag or key: the field is left out.
 */
export function brokerFields(delivery: LeasedDelivery, subscription?: string, trace?: Readonly<Record<string, string>>): Record<string, string> {
  const m = delivery.message;
  const fields: Record<string, string> = { "tidings-id": m.id, "tidings-topic": m.topic };
  if (m.tag !== null) fields["tidings-tag"] = m.tag;
  if (m.key !== null) fields["tidings-key"] = m.key;
  fields["tidings-attempt"] = String(delivery.attempt);
  // The consumer's half of the key it reports its outcome by (POST /v1/outcomes): subscription + message id.
  if (subscription !== undefined) fields["tidings-subscription"] = subscription;
  // The attempt's trace context, under its W3C names: a consumer's span continues the trace.
  if (trace) Object.assign(fields, trace);
  return fields;
}

/**
 * Fills `{topic}`, `{tag}` and `{key}` in a routing key or subject template. An absent tag or
 * key renders as `_`; `clean` makes each value safe for the broker's syntax.
 */
export function renderTemplate(template: string, delivery: LeasedDelivery, clean: (value: string) => string = (v) => v): string {
  const m = delivery.message;
  return template.replace(/\{(topic|tag|key)\}/g, (_, name: "topic" | "tag" | "key") => clean(m[name] ?? "_"));
}

/** NATS subject tokens: no whitespace, no wildcards; dots in a value would add tokens, kept on purpose for topics. */
export const natsToken = (value: string): string => value.replace(/[\s*>]/g, "_") || "_";

/** Bounds a send by a timeout; resolves to the timeout's value if it fires first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((resolve) => {
      timer = setTimeout(() => resolve(onTimeout()), ms);
    }),
  ]);
}
