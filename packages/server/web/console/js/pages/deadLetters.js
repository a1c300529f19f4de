import { api, enc, qs } from "../api.js";
import { act, badge, formatCount, fullId, h, notify, table, time } from "../dom.js";
import { alertTable } from "./alertList.js";

/** Dead letters and alerts: what needs a person. */
export async function renderDeadLetters(ctx) {
  ctx.title("Dead letters");
  const q = Object.fromEntries(ctx.query);
  const [stats, page, alerts, doubtful] = await Promise.all([
    api.get("/v1/stats"),
    api.get(`/v1/deliveries${qs({ state: "dead", subscription: q.subscription, cursor: q.cursor, limit: 50 })}`),
    api.get(`/v1/alerts${qs({ state: q.alertState || "unresolved", cursor: q.alerts, limit: 50 })}`),
    api.get("/v1/messages?state=in_doubt&limit=50"),
  ]);
  if (!ctx.current()) return;
  const withDead = stats.subscriptions.filter((s) => s.counts.dead > 0);

  const filter = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter dead letters",
      onsubmit: (event) => {
        event.preventDefault();
        ctx.navigate(`#/dead-letters${qs({ subscription: new FormData(event.target).get("subscription") })}`);
      },
    },
    h(
      "label",
      {},
      "Subscription",
      h(
        "select",
        { name: "subscription" },
        h("option", { value: "" }, "all"),
        stats.subscriptions.map((s) => h("option", { value: s.subscription, selected: s.subscription === q.subscription }, s.subscription)),
      ),
    ),
    h("div", {}, h("button", { type: "submit" }, "Show")),
  );

  const list = table(
    [
      { label: "Message" },
      { label: "Subscription" },
      { label: "Key", class: "wide-only" },
      { label: "Attempts", class: "num wide-only" },
      { label: "Why" },
      { label: "Dead since", class: "wide-only" },
      { label: "Action" },
    ],
    page.items.map((d) => [
      { value: h("a", { href: `#/messages/${enc(d.messageId)}` }, d.messageId), class: "id" },
      h("a", { href: `#/subscriptions/${enc(d.subscription)}` }, d.subscription),
      d.key ?? "—",
      String(d.attempts),
      h(
        "span",
        {},
        d.deadReason ?? "—",
        d.lastStatus !== null || d.lastError ? h("div", { class: "small muted" }, d.lastError ?? `HTTP ${d.lastStatus}`) : null,
      ),
      time(d.deadAt),
      h(
        "div",
        { class: "row", "data-needs": "operator" },
        h(
          "button",
          {
            type: "button",
            class: "small",
            "aria-label": `Re-send ${d.messageId} to ${d.subscription}`,
            onclick: async (e) => {
              const button = e.currentTarget;
              const result = await act(button, () => api.post(`/v1/messages/${enc(d.messageId)}/resend`, { subscription: d.subscription }));
              if (result) {
                notify(`Re-sent ${d.messageId} to ${d.subscription}.`);
                button.closest("tr").querySelector("td:nth-child(5)").replaceChildren(badge("pending", "re-sent"));
                button.remove();
              }
            },
          },
          "Re-send",
        ),
        h(
          "button",
          {
            type: "button",
            class: "small quiet",
            "aria-label": `Skip ${d.messageId} for ${d.subscription}`,
            title: "Leave it dead and let the later messages of its key go (subscriptions ordered by key)",
            onclick: async (e) => {
              const button = e.currentTarget;
              const result = await act(button, () => api.post(`/v1/deliveries/${d.id}/skip`));
              if (result) {
                notify(`Skipped ${d.messageId} for ${d.subscription}: its key goes on.`);
                button.closest("tr").querySelector("td:nth-child(5)").replaceChildren(badge("dead", "skipped"));
                button.remove();
              }
            },
          },
          "Skip",
        ),
      ),
    ]),
    { empty: q.subscription ? `No dead delivery for ${q.subscription}.` : "No dead delivery. All clear." },
  );

  // Grouped: one alert per condition and subject, however many occurrences it counts.
  const alertList = alertTable(alerts.items, {
    changed: () => ctx.navigate(location.hash),
    empty: q.alertState === "resolved" ? "No resolved alert." : "No open alert.",
  });
  const lastAlert = alerts.items.at(-1);

  ctx.main.append(
    h("h1", {}, "Dead letters and alerts"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-by-sub" },
      h("h2", { id: "h-by-sub" }, "Dead deliveries by subscription"),
      table(
        [{ label: "Subscription" }, { label: "Dead", class: "num" }, { label: "" }],
        withDead.map((s) => [
          h("a", { href: `#/dead-letters?subscription=${enc(s.subscription)}` }, s.subscription),
          formatCount(s.counts.dead, stats.countCap),
          h("a", { class: "button quiet small", href: `#/subscriptions/${enc(s.subscription)}?focus=resend` }, "Re-send all in batches…"),
        ]),
        { empty: "No subscription has dead deliveries." },
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-alerts" },
      h("h2", { id: "h-alerts" }, q.alertState === "resolved" ? "Resolved alerts" : "Open alerts"),
      alertList,
      h(
        "div",
        { class: "row" },
        q.alerts
          ? h("a", { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription, alertState: q.alertState })}` }, "Newest alerts")
          : null,
        alerts.items.length === 50 && lastAlert
          ? h(
              "a",
              { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription, alertState: q.alertState, alerts: lastAlert.id })}` },
              "Older alerts →",
            )
          : null,
        q.alertState === "resolved"
          ? h("a", { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription })}` }, "Open alerts")
          : h("a", { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription, alertState: "resolved" })}` }, "Resolved alerts"),
      ),
    ),
    // Transactional messages that check-back could not settle: a person commits or rolls back.
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-doubt" },
      h("h2", { id: "h-doubt" }, "Messages in doubt"),
      table(
        [{ label: "Message" }, { label: "App" }, { label: "Topic", class: "wide-only" }, { label: "In doubt since" }],
        doubtful.items.map((m) => [
          { value: h("a", { href: `#/messages/${enc(fullId(m))}` }, fullId(m)), class: "id" },
          m.app ?? "—",
          m.topic,
          time(m.inDoubtAt),
        ]),
        { empty: "No message is in doubt." },
      ),
      h("p", { class: "small muted" }, "Their producer never answered the check-back. Open one to commit or roll it back by hand."),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-list" },
      h("h2", { id: "h-list" }, q.subscription ? `Dead deliveries of ${q.subscription}` : "Dead deliveries, newest first"),
      filter,
      list,
      h(
        "div",
        { class: "row" },
        q.cursor ? h("a", { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription })}` }, "Newest") : null,
        page.nextCursor
          ? h("a", { class: "button quiet", href: `#/dead-letters${qs({ subscription: q.subscription, cursor: page.nextCursor })}` }, "Older →")
          : null,
      ),
    ),
  );
}
