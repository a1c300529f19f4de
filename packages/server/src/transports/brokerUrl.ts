import type { BrokerEndpoint } from "../domain/subscription.ts";

/** The URL schemes each broker endpoint type accepts. */
export const BROKER_PROTOCOLS: Record<BrokerEndpoint["type"], readonly string[]> = {
  rabbitmq: ["amqp:", "amqps:"],
  nats: ["nats:", "tls:"],
  redis: ["redis:", "rediss:"],
};

/** Default ports, for the network policy check and error texts. */
const DEFAULT_PORTS: Record<string, number> = { "amqp:": 5672, "amqps:": 5671, "nats:": 4222, "tls:": 4222, "redis:": 6379, "rediss:": 6379 };

/**
 * A broker URL with its secrets replaced by `***`: `amqp://user:***@host/vhost`. A NATS URL
 * with a user and no password carries a token (`nats://token@host`), masked whole.
 * Anything that does not parse is masked entirely rather than shown.
 */
export function maskUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "***";
  }
  if (url.password) url.password = "***";
  else if (url.username && (url.protocol === "nats:" || url.protocol === "tls:")) url.username = "***";
  return url.toString();
}

/** Replaces every occurrence of a URL's secrets in a text (an error message) by `***`. */
export function scrubSecrets(text: string, urlText: string): string {
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    return text;
  }
  let out = text.split(urlText).join(maskUrl(urlText));
  for (const secret of [url.password, decodeURIComponent(url.password)]) {
    if (secret.length >= 3) out = out.split(secret).join("***");
  }
  return out;
}

export interface BrokerAddress {
  protocol: string;
  /** Host without IPv6 brackets. */
  host: string;
  port: number;
}

/**
 * Checks a broker URL's form for an endpoint type; returns its address (for the network
 * policy) or a reason it is refused.
 */
export function parseBrokerUrl(type: BrokerEndpoint["type"], text: string): BrokerAddress | { error: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { error: "is not a URL" };
  }
  const protocols = BROKER_PROTOCOLS[type];
  if (!protocols.includes(url.protocol)) return { error: `must start with ${protocols.map((p) => `${p}//`).join(" or ")}` };
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!host) return { error: "has no host" };
  return { protocol: url.protocol, host, port: url.port ? Number(url.port) : DEFAULT_PORTS[url.protocol]! };
}
