import { hostname } from "node:os";
import type { Redis } from "ioredis";
import { TidingsError } from "../errors.ts";
import { attemptOf, ConsumeCore, sleep, type BrokerDelivery, type ConsumeOptions, type Consumer } from "./consumeCore.ts";

export interface RedisConsumeOptions extends ConsumeOptions {
  /** redis(s)://[user:pass@]host:port[/db] */
  url: string;
  stream: string;
  /** The consumer group: consumers sharing it share the work. Created (with the stream) when missing. */
  group: string;
  /** This consumer's name in the group; default `<hostname>-<pid>`. */
  consumer?: string;
  /** Where a new group starts: "0" (default) the whole stream, "$" only new entries. */
  startId?: string;
  /** Pending entries idle this long (unacked: a failed handler, a consumer that died) are claimed with XAUTOCLAIM; default 30 s. */
  claimIdleMs?: number;
  /** After this many deliveries an entry is moved to `deadStream` and acked; default 5. */
  maxDeliveries?: number;
  /** Default `<stream>:dead`. */
  deadStream?: string;
  /** How long one XREADGROUP waits for new entries; default 2 s. */
  blockMs?: number;
}

type Entry = [id: string, fields: string[]];

function fieldsOf(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

/**
 * Consumes a Redis stream fed by a Tidings subscription (type `redis`) through a consumer group:
 * each entry is applied through the inbox in the consumer's own transaction, then XACKed. A
 * failed handler leaves the entry pending; pending entries idle for `claimIdleMs` (this
 * consumer's failures, or a dead consumer's entries) are claimed with XAUTOCLAIM and tried
 * again, and after `maxDeliveries` moved to the dead stream. A restart of Redis is waited out.
 */
export async function consumeRedis(options: RedisConsumeOptions): Promise<Consumer> {
  const core = new ConsumeCore(options);
  const maxDeliveries = options.maxDeliveries ?? 5;
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) throw new TidingsError("config", "maxDeliveries must be a positive integer");
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const blockMs = options.blockMs ?? 2000;
  const deadStream = options.deadStream ?? `${options.stream}:dead`;
  const name = options.consumer ?? `${hostname()}-${process.pid}`;
  const { Redis: RedisClient } = await import("ioredis");
  const connect = (role: string) => {
    const client: Redis = new RedisClient(options.url, {
      lazyConnect: true,
      protocol: 2, // the classic reply shapes (ioredis 6 defaults to RESP3, where XREADGROUP answers a map)
      maxRetriesPerRequest: null, // wait out a restart rather than fail each command
      retryStrategy: (times) => Math.min(100 * times, 1000),
      connectionName: `tidings-consumer:${options.group}:${role}`,
    });
    client.on("error", () => undefined); // reconnects by itself
    return client;
  };
  // XREADGROUP BLOCK holds its connection: acks and claims go over a second one.
  const reader = connect("read");
  const commands = connect("ack");
  try {
    await Promise.all([reader.connect(), commands.connect()]);
    await commands.call("XGROUP", "CREATE", options.stream, options.group, options.startId ?? "0", "MKSTREAM").catch((error: Error) => {
      if (!/BUSYGROUP/.test(error.message)) throw error;
    });
  } catch (error) {
    reader.disconnect();
    commands.disconnect();
    throw error;
  }
  let closing = false;
  let wasDown = false;
  commands.on("close", () => {
    if (!closing && !wasDown) core.emit({ type: "disconnected", error: new Error("connection to Redis closed") });
    wasDown = true;
  });
  commands.on("ready", () => {
    if (wasDown) core.emit({ type: "connected" });
    wasDown = false;
  });

  async function handle(entries: Entry[], redelivered: (id: string) => BrokerDelivery): Promise<void> {
    const done: string[] = [];
    await Promise.all(
      entries.map(async ([id, raw]) => {
        const fields = fieldsOf(raw);
        const verdict = await core.process(fields.body ?? "", redelivered(id));
        if (verdict === "ack") done.push(id);
        else if (verdict === "reject") await bury(id, raw, null);
      }),
    );
    if (done.length > 0) await commands.call("XACK", options.stream, options.group, ...done).catch(() => undefined); // lost: claimed again later
  }

  /** Moves an entry to the dead stream and acks it, in one transaction. */
  async function bury(id: string, raw: string[], deliveryCount: number | null): Promise<void> {
    await commands
      .multi()
      .call("XADD", deadStream, "*", ...raw, "tidings-stream-id", id, "tidings-deliveries", String(deliveryCount ?? 1))
      .call("XACK", options.stream, options.group, id)
      .exec();
    const fields = fieldsOf(raw);
    core.emit({ type: "dead", id: fields["tidings-id"] ?? id, deliveryCount: deliveryCount ?? 1 });
  }

  const fresh = (fields: Record<string, string>): BrokerDelivery => ({
    broker: "redis",
    redelivered: false,
    deliveryCount: 1,
    attempt: attemptOf(fields["tidings-attempt"]),
  });

  async function readLoop(): Promise<void> {
    // First this consumer's own pending entries (a restart under the same name), once each:
    // reading pending entries from an id gives those after it. Then new entries (">").
    let from = "0-0";
    while (!closing) {
      try {
        const reply = (await reader.call(
          "XREADGROUP",
          "GROUP",
          options.group,
          name,
          "COUNT",
          String(core.concurrency),
          "BLOCK",
          String(blockMs),
          "STREAMS",
          options.stream,
          from,
        )) as [string, Entry[]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        const own = from !== ">";
        if (own) {
          if (entries.length === 0) {
            from = ">";
            continue;
          }
          from = entries.at(-1)![0];
        }
        const byId = new Map(entries.map(([id, raw]) => [id, fieldsOf(raw)]));
        await handle(entries, (id) => ({ ...fresh(byId.get(id)!), redelivered: own }));
      } catch {
        if (!closing) await sleep(200); // disconnected: ioredis reconnects, the call is retried
      }
    }
  }

  async function claimOnce(): Promise<number> {
    const [, claimed] = (await commands.call(
      "XAUTOCLAIM",
      options.stream,
      options.group,
      name,
      String(claimIdleMs),
      "0-0",
      "COUNT",
      String(core.concurrency),
    )) as [string, Entry[]];
    const entries = claimed.filter((e) => Array.isArray(e[1])); // entries deleted meanwhile come back empty
    if (entries.length === 0) return 0;
    // delivery counts (XAUTOCLAIM counted this one) for the dead-letter limit
    const pending = (await commands.call("XPENDING", options.stream, options.group, entries[0]![0], entries.at(-1)![0], String(entries.length * 2), name)) as [
      string,
      string,
      number,
      number,
    ][];
    const counts = new Map(pending.map(([id, , , count]) => [id, Number(count)]));
    const live: Entry[] = [];
    for (const entry of entries) {
      const count = counts.get(entry[0]) ?? 1;
      if (count > maxDeliveries) await bury(entry[0], entry[1], count - 1);
      else live.push(entry);
    }
    await handle(live, (id) => {
      const fields = fieldsOf(live.find((e) => e[0] === id)![1]);
      return { broker: "redis", redelivered: true, deliveryCount: counts.get(id) ?? null, attempt: attemptOf(fields["tidings-attempt"]) };
    });
    return entries.length;
  }

  async function claimLoop(): Promise<void> {
    const every = Math.max(100, Math.min(claimIdleMs / 2, 5000));
    while (!closing) {
      await sleep(every);
      try {
        while (!closing && (await claimOnce()) === core.concurrency) {
          // a full batch: more may be waiting
        }
      } catch {
        // disconnected: next round
      }
    }
  }

  const loops = Promise.all([readLoop(), claimLoop()]);
  core.emit({ type: "connected" });

  return {
    stats: core.stats,
    async close() {
      closing = true;
      reader.disconnect(); // ends a blocking read at once
      await loops;
      await core.drained();
      await commands.quit().catch(() => commands.disconnect());
    },
  };
}
