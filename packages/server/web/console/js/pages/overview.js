import { api } from "../api.js";
import { throughputChart } from "../chart.js";
import { badge, clear, formatAge, formatCount, h, table, time } from "../dom.js";

const REFRESH_MS = 5_000;
const MESSAGE_STATES = { committed: "Committed", prepared: "Prepared", in_doubt: "In doubt", rolled_back: "Rolled back" };
const DELIVERY_STATES = { pending: "Pending", delivered: "Delivered", dead: "Dead" };

function counts(map, labels, cap, links = {}) {
  const keys = [...Object.keys(labels).filter((k) => k in map), ...Object.keys(map).filter((k) => !(k in labels))];
  return h(
    "dl",
    { class: "stats" },
    keys.map((k) =>
      h("div", {}, h("dt", {}, labels[k] ?? k), h("dd", {}, links[k] ? h("a", { href: links[k] }, formatCount(map[k], cap)) : formatCount(map[k], cap))),
    ),
  );
}

/** The overview: counts by state, the oldest pending delivery, throughput over the last hour. */
export async function renderOverview(ctx) {
  ctx.title("Overview");
  const body = h("div", {});
  const updated = h("span", { class: "muted small" });
  ctx.main.append(h("div", { class: "spread" }, h("h1", {}, "Overview"), updated), body);

  async function draw() {
    const [stats, alerts] = await Promise.all([api.get("/v1/stats"), api.get("/v1/alerts?limit=5")]);
    if (!ctx.current()) return;
    const cap = stats.countCap;
    const oldest = stats.oldestPending;
    clear(body).append(
      h(
        "div",
        { class: "grid" },
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-messages" },
          h("h2", { id: "h-messages" }, "Messages"),
          counts(stats.messages, MESSAGE_STATES, cap, { prepared: "#/messages?state=prepared", in_doubt: "#/messages?state=in_doubt" }),
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-deliveries" },
          h("h2", { id: "h-deliveries" }, "Deliveries"),
          counts(stats.deliveries.total, DELIVERY_STATES, cap, { dead: "#/dead-letters", pending: "#/messages?deliveryState=pending" }),
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-oldest" },
          h("h2", { id: "h-oldest" }, "Oldest pending delivery"),
          oldest
            ? [
                h("p", { class: "big", id: "oldest-age" }, formatAge(oldest.ageSeconds)),
                h(
                  "p",
                  { class: "small muted" },
                  "for ",
                  h("a", { href: `#/subscriptions/${encodeURIComponent(oldest.subscription)}` }, oldest.subscription),
                  ": message ",
                  h("a", { href: `#/messages/${encodeURIComponent(oldest.messageId)}`, class: "mono" }, oldest.messageId),
                ),
              ]
            : [h("p", { class: "big", id: "oldest-age" }, "none"), h("p", { class: "small muted" }, "Nothing is waiting to be delivered.")],
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-alerts" },
          h("h2", { id: "h-alerts" }, "Open alerts"),
          h("p", { class: "big", id: "open-alerts" }, stats.openAlerts > 0 ? h("a", { href: "#/dead-letters" }, formatCount(stats.openAlerts, cap)) : "0"),
          h(
            "p",
            { class: "small muted" },
            stats.openAlerts > 0 ? "Each counts its occurrences (dead deliveries, messages in doubt, …); they wait for a person." : "Nothing needs a person.",
          ),
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-throughput" },
        h("h2", { id: "h-throughput" }, "Throughput per minute, last hour"),
        throughputChart(stats.throughput),
      ),
      // The latest unresolved alerts, grouped; acknowledged and resolved on the dead letters page.
      alerts.items.length > 0
        ? h(
            "section",
            { class: "panel", "aria-labelledby": "h-latest-alerts" },
            h("h2", { id: "h-latest-alerts" }, "Latest alerts"),
            table(
              [{ label: "State" }, { label: "What" }, { label: "Count", class: "num" }, { label: "First / last", class: "wide-only" }],
              alerts.items.map((a) => [
                badge(a.state === "open" ? "dead" : "pending", a.state),
                h("span", {}, h("strong", {}, a.condition.replaceAll("_", " ")), " ", a.link ? h("a", { href: a.link }, a.subject) : a.subject),
                String(a.count),
                h("span", { class: "small" }, time(a.firstAt), " – ", time(a.lastAt)),
              ]),
            ),
            h("p", { class: "small" }, h("a", { href: "#/dead-letters" }, "Acknowledge or resolve them on Dead letters and alerts")),
          )
        : null,
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-subs" },
        h("h2", { id: "h-subs" }, "Deliveries by subscription"),
        table(
          [
            { label: "Subscription" },
            { label: "Status", class: "wide-only" },
            { label: "Pending", class: "num" },
            { label: "Delivered", class: "num" },
            { label: "Dead", class: "num" },
          ],
          stats.subscriptions.map((s) => [
            h(
              "span",
              {},
              h("a", { href: `#/subscriptions/${encodeURIComponent(s.subscription)}` }, s.subscription),
              s.enabled ? null : h("span", { class: "narrow-only" }, " ", badge("paused")),
            ),
            s.enabled ? badge("active") : badge("paused"),
            formatCount(s.counts.pending, cap),
            formatCount(s.counts.delivered, cap),
            s.counts.dead > 0 ? h("a", { href: `#/dead-letters?subscription=${encodeURIComponent(s.subscription)}` }, formatCount(s.counts.dead, cap)) : "0",
          ]),
          { empty: "No subscriptions yet." },
        ),
        h(
          "p",
          { class: "small muted" },
          `Counts stop at ${cap.toLocaleString("en-US")} (shown as ${cap.toLocaleString("en-US")}+) so that the page stays fast on large tables.`,
        ),
      ),
    );
    clear(updated).append("Updated ", time(stats.generatedAt));
  }

  await draw();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") draw().catch(() => {});
  }, REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
