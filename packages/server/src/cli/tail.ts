import { CommandError, withQuery } from "./client.ts";
import { type Api, UsageError } from "./context.ts";
import { clock, cut } from "./format.ts";
import type { Message } from "./messages.ts";
import { duration, when } from "./values.ts";

/**
 * `tidings tail`: new messages and the changes of deliveries, one line each, until Ctrl-C. It
 * asks the service again every --interval: the messages created since the newest it has seen
 * (a page at a time, following the cursor), and the newest deliveries, printing those whose
 * state or attempts changed.
 */

interface ListedDelivery {
  id: number;
  messageId: string;
  topic: string;
  subscription: string;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
  deadAt: string | null;
  createdAt: string;
}

/**
 * Messages are asked for from this long before the newest seen: a message created earlier
 * can commit later (a long transaction, a prepared message), and must not be passed over.
 */
const OVERLAP_MS = 30_000;
/** Messages per page, and the pages read per round (a burst beyond them is read next round). */
const PAGE = 200;
const PAGES = 10;
/** The newest deliveries compared each round: a change among older ones is not shown. */
const DELIVERIES = 1000;

const messageLine = (m: Message): string =>
  `${clock(m.createdAt)}  message   ${m.app ? `${m.app}/` : ""}${m.id}  ${m.topic}${m.key === null ? "" : `  key ${m.key}`}  ${m.state}`;

function deliveryLine(d: ListedDelivery): string {
  const at = d.deliveredAt ?? d.deadAt ?? d.lastAttemptAt ?? d.createdAt;
  const last = [d.lastStatus === null ? null : String(d.lastStatus), d.lastError === null ? null : cut(d.lastError, 100)].filter((x) => x !== null);
  return `${clock(at)}  delivery  ${d.messageId} → ${d.subscription}  ${d.state}  attempt ${d.attempts}${last.length ? `  ${last.join(" ")}` : ""}`;
}

export async function tail(api: Api, options: { topic?: string; since?: string; interval: string }): Promise<number> {
  const intervalMs = duration("--interval", options.interval);
  let stopped = false;
  let wake = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const first = await api.call("GET", withQuery("/v1/messages", { limit: 1 }));
  // From the service's clock (its Date header), not this machine's.
  const since = new Date(when(options.since) ?? first.headers.get("date") ?? Date.now()).getTime();
  if (Number.isNaN(since)) throw new UsageError(`--since must be a time with its zone or a duration ago (10m), not ${options.since}`);
  const print = (kind: string, value: object, line: string) => console.log(api.json ? JSON.stringify({ type: kind, ...value }) : line);

  /** The messages printed, by id, with their creation time (forgotten once out of the overlap). */
  const seen = new Map<string, number>();
  let newest = since;
  async function messages(): Promise<void> {
    const after = Math.max(since, newest - OVERLAP_MS);
    const fresh: Message[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < PAGES; page++) {
      const { body } = await api.call(
        "GET",
        withQuery("/v1/messages", { createdAfter: new Date(after).toISOString(), topic: options.topic, limit: PAGE, cursor }),
      );
      const items = body.items as Message[];
      const unseen = items.filter((m) => !seen.has(`${m.app}/${m.id}`));
      fresh.push(...unseen);
      cursor = body.nextCursor as string | undefined;
      if (!cursor || unseen.length === 0) break;
    }
    fresh.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const m of fresh) {
      const at = Date.parse(m.createdAt);
      seen.set(`${m.app}/${m.id}`, at);
      newest = Math.max(newest, at);
      print("message", m, messageLine(m));
    }
    for (const [id, at] of seen) if (at < after - OVERLAP_MS) seen.delete(id);
  }

  /** Each delivery's last state and attempts, as `state/attempts`. */
  let known = new Map<number, string>();
  let followDeliveries = true;
  async function deliveries(): Promise<void> {
    let body: Record<string, unknown>;
    try {
      body = (await api.call("GET", withQuery("/v1/deliveries", { limit: DELIVERIES }))).body;
    } catch (error) {
      if (!(error instanceof CommandError && error.status === 403)) throw error;
      // An app's key reads its messages, not the deliveries list (people's).
      followDeliveries = false;
      console.error("tidings tail: following messages only: delivery changes need a person's key (viewer or above)");
      return;
    }
    const items = (body.items as ListedDelivery[]).filter((d) => options.topic === undefined || d.topic === options.topic);
    const now = new Map<number, string>();
    for (const d of items.reverse()) {
      const state = `${d.state}/${d.attempts}`;
      const before = known.get(d.id);
      // A delivery first seen is shown once something happened to it; one seen before, when that changed.
      const changed = before === undefined ? Date.parse(d.createdAt) >= since && (d.attempts > 0 || d.state !== "pending") : before !== state;
      if (changed) print("delivery", d, deliveryLine(d));
      now.set(d.id, state);
    }
    known = now;
  }

  while (!stopped) {
    try {
      await messages();
      if (followDeliveries) await deliveries();
    } catch (error) {
      // A service restarting is waited for; a refusal (a bad filter, a key refused) ends the command.
      if (!(error instanceof CommandError) || error.status !== undefined) throw error;
      console.error(`tidings tail: ${error.message}; trying again`);
    }
    if (stopped) break;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, intervalMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  return 0;
}
