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
  /**
   * How often pending entries are looked at for their retry (XPENDING); default a tenth of the
   * schedule's shortest step, from 50 ms to 5 s.
   */
  claimEveryMs?: number;
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
 * failed handler leaves the entry pending; a pending entry delivered n times is claimed (XCLAIM)
 * and tried again once it has been idle for step n of the `retry` schedule — the same path takes
 * over a dead consumer's entries — and when its tries run out it is moved to the dead stream
 * and reported as given up. A restart of Redis is waited out.
 */
export async function consumeRedis(options: RedisConsumeOptions): Promise<Consumer> {
  const core = new ConsumeCore(options);
  const plan = core.retry;
  const shortest = plan.schedule.length ? Math.min(...plan.schedule) : 1000;
  const claimEveryMs = options.claimEveryMs ?? Math.max(50, Math.min(shortest / 10, 5000));
  if (!(claimEveryMs > 0)) throw new TidingsError("config", "claimEveryMs must be positive");
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

  /**
   * Entries this consumer is handling or acking now: the claim loop leaves them alone. An entry
   * whose handler (or whose batch's ack) outlasts the shortest step of the schedule looks idle
   * to Redis, and would otherwise be claimed and handled a second time by this same consumer.
   */
  const working = new Set<string>();

  async function handle(entries: Entry[], redelivered: (id: string) => BrokerDelivery): Promise<void> {
    for (const [id] of entries) working.add(id);
    try {
      await handleBatch(entries, redelivered);
    } finally {
      for (const [id] of entries) working.delete(id);
    }
  }

  async function handleBatch(entries: Entry[], redelivered: (id: string) => BrokerDelivery): Promise<void> {
    const done: string[] = [];
    await Promise.all(
      entries.map(async ([id, raw]) => {
        const fields = fieldsOf(raw);
        const delivery = redelivered(id);
        const verdict = await core.process(fields.body ?? "", { ...delivery, subscription: fields["tidings-subscription"] ?? null });
        if (verdict === "ack") done.push(id);
        else if (verdict === "dead") await bury(id, raw, delivery.deliveryCount).catch(() => undefined); // lost: claimed and given up on again
        // else: left pending, claimed again after its step of the schedule
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
  }

  const fresh = (fields: Record<string, string>): BrokerDelivery => ({
    broker: "redis",
    redelivered: false,
    deliveryCount: 1,
    attempt: attemptOf(fields["tidings-attempt"]),
    subscription: null,
    tryNumber: 1,
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

  /** The wait after the n-th delivery of an entry failed (or its consumer died with it) before the next. */
  const stepAfter = (deliveries: number): number => plan.schedule[Math.min(Math.max(deliveries, 1) - 1, plan.schedule.length - 1)] ?? 0;

  /**
   * Where the next look at the pending entries starts: each round reads the page after the last,
   * then starts over, so entries waiting a long step at the front (10 h) never hide due ones behind them.
   */
  let scanFrom = "-";

  async function claimOnce(): Promise<number> {
    // Pending entries idle for the shortest step at least, by id: [id, consumer, idle ms, deliveries].
    const page = core.concurrency * 4;
    const pending = (await commands.call(
      "XPENDING",
      options.stream,
      options.group,
      "IDLE",
      String(plan.schedule.length ? shortest : 0),
      scanFrom,
      "+",
      String(page),
    )) as [string, string, number, number][];
    scanFrom = pending.length < page ? "-" : `(${pending.at(-1)![0]}`;
    // Due: idle for the step of its delivery count. XCLAIM with that step as its minimum idle time
    // takes each only if no other consumer took it meanwhile, and counts the delivery.
    const dueByStep = new Map<number, string[]>();
    for (const [id, , idle, deliveries] of pending) {
      if (working.has(id)) continue;
      const step = stepAfter(Number(deliveries));
      if (Number(idle) >= step) dueByStep.set(step, [...(dueByStep.get(step) ?? []), id]);
    }
    let taken = 0;
    for (const [step, ids] of dueByStep) {
      const claimed = ((await commands.call("XCLAIM", options.stream, options.group, name, String(step), ...ids.slice(0, core.concurrency))) as Entry[]).filter(
        (e) => Array.isArray(e?.[1]), // entries deleted meanwhile come back empty
      );
      if (claimed.length === 0) continue;
      taken += claimed.length;
      const counts = new Map(pending.map(([id, , , n]) => [id, Number(n) + 1])); // XCLAIM counted this delivery
      await handle(claimed, (id) => {
        const fields = fieldsOf(claimed.find((e) => e[0] === id)![1]);
        const tries = counts.get(id) ?? 2;
        return {
          broker: "redis",
          redelivered: true,
          deliveryCount: tries,
          attempt: attemptOf(fields["tidings-attempt"]),
          subscription: null,
          tryNumber: tries,
        };
      });
    }
    return taken;
  }

  async function claimLoop(): Promise<void> {
    while (!closing) {
      await sleep(claimEveryMs);
      try {
        while (!closing && (await claimOnce()) >= core.concurrency) {
          // a full batch: more may be due
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
