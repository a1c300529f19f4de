import { api, ApiError, enc } from "../api.js";
import { act, badge, clear, confirmAction, fullId, h, notify, table, time } from "../dom.js";

/** While a delivery is pending the page follows it: every second at first, then less often (a delayed delivery may wait for days). */
const followDelay = (round) => Math.min(1_000 * 1.25 ** round, 15_000);

/**
 * Every attempt in order, each with what came next: the time of the following attempt of the
 * same delivery, or, for its latest failed attempt, the scheduled next attempt.
 */
function timeline(attempts, deliveries) {
  const pendingNext = new Map(deliveries.filter((d) => d.state === "pending").map((d) => [d.subscription, d.nextAttemptAt]));
  const items = attempts.map((a, i) => {
    const later = attempts.slice(i + 1).find((b) => b.subscription === a.subscription);
    const next = a.outcome === "failed" ? (later ? later.at : (pendingNext.get(a.subscription) ?? null)) : null;
    return h(
      "li",
      { class: a.outcome },
      h(
        "div",
        { class: "what" },
        h("span", { class: "when" }, time(a.at, { ms: true })),
        h("strong", {}, a.subscription),
        h("span", {}, `attempt ${a.attempt}`),
        badge(a.outcome === "failed" ? "failed-attempt" : a.outcome, a.outcome),
        h("span", {}, a.statusCode === null ? "no answer" : `HTTP ${a.statusCode}`),
        h("span", { class: "muted" }, `${a.latencyMs} ms`),
      ),
      a.error ? h("div", { class: "err" }, a.error) : null,
      next ? h("div", { class: "small muted" }, later ? "next attempt " : "next attempt scheduled for ", time(next, { ms: !!later })) : null,
    );
  });
  for (const d of deliveries) {
    if (d.state === "pending" && !attempts.some((a) => a.subscription === d.subscription)) {
      items.push(
        h(
          "li",
          { class: "upcoming" },
          h("div", { class: "what" }, h("strong", {}, d.subscription), h("span", {}, "first attempt due "), time(d.nextAttemptAt)),
        ),
      );
    }
  }
  return items.length ? h("ol", { class: "timeline", "aria-label": "Delivery attempts, oldest first" }, items) : h("p", { class: "empty" }, "No attempt yet.");
}

/** One message: its content, its deliveries with their actions, and the timeline of attempts. */
export async function renderMessage(ctx, id) {
  ctx.title(`Message ${id}`);
  const path = `/v1/messages/${enc(id)}`;
  const view = h("div", {});
  ctx.main.append(h("p", { class: "crumbs" }, h("a", { href: "#/messages" }, "Messages"), " / "), view);
  let timer = null;
  let round = 0;
  ctx.onLeave(() => clearTimeout(timer));

  async function resend(button, subscription) {
    round = 0;
    const body = subscription ? { subscription } : {};
    const result = await act(button, () => api.post(`${path}/resend`, body));
    if (result) notify(`Re-sent ${result.resent} deliver${result.resent === 1 ? "y" : "ies"}.`);
    await draw();
  }

  async function markDead(button, subscription) {
    const ok = await confirmAction(
      "Mark as dead?",
      subscription ? `The pending delivery to ${subscription} stops being retried.` : "Every pending delivery of this message stops being retried.",
      "Mark dead",
      { danger: true },
    );
    if (!ok) return;
    const result = await act(button, () =>
      api.post(`${path}/dead`, subscription ? { subscription, reason: "marked dead in the console" } : { reason: "marked dead in the console" }),
    );
    if (result) notify(`${result.dead} deliver${result.dead === 1 ? "y is" : "ies are"} dead now.`);
    await draw();
  }

  /** A prepared message (typically one in doubt) settled by hand. */
  async function settle(button, how) {
    const ok = await confirmAction(
      how === "commit" ? "Commit this message?" : "Roll this message back?",
      how === "commit"
        ? "Do this only if the producer's transaction did commit: the message is delivered to its subscribers at once."
        : "Do this only if the producer's transaction did not commit: the message is never delivered.",
      how === "commit" ? "Commit" : "Roll back",
      { danger: how !== "commit" },
    );
    if (!ok) return;
    const done = await act(button, () => api.post(`${path}/${how}`));
    if (done) notify(how === "commit" ? "Committed: delivering now." : "Rolled back.");
    round = 0;
    await draw();
  }

  async function remove(button) {
    const ok = await confirmAction("Delete this message?", `Message ${id}, its deliveries and their log are deleted for good.`, "Delete message", {
      danger: true,
    });
    if (!ok) return;
    const done = await act(button, () => api.delete(path).then(() => true));
    if (done) {
      notify(`Message ${id} deleted.`);
      ctx.navigate("#/messages");
    }
  }

  async function draw() {
    clearTimeout(timer);
    let message;
    let attempts;
    let checks;
    try {
      // The message first, its attempts after: an attempt is written with its delivery's state, so
      // attempts read after a "delivered" state always include the attempt that delivered it (read
      // at the same time, they could come from just before, and the page would stop following).
      message = await api.get(path);
      [attempts, checks] = await Promise.all([api.get(`${path}/attempts`), api.get(`${path}/checks`)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        clear(view).append(h("h1", {}, "No such message"), h("p", {}, `No message has the id ${id}.`));
        return;
      }
      throw error;
    }
    if (!ctx.current()) return;
    const deliveries = message.deliveries ?? [];
    const anyPending = deliveries.some((d) => d.state === "pending");
    const prepared = message.state === "prepared";
    // The page redraws while it follows pending deliveries: keep the keyboard focus where it was.
    const focused = view.contains(document.activeElement)
      ? (document.activeElement.dataset.key ?? (document.activeElement.tagName === "H1" ? "h1" : null))
      : null;
    clear(view).append(
      h(
        "div",
        { class: "spread" },
        h("h1", {}, "Message ", h("span", { class: "mono" }, fullId(message))),
        h(
          "span",
          {},
          badge(message.state),
          message.inDoubtAt && prepared ? [" ", badge("dead", "in doubt")] : null,
          message.completedAt ? [" ", badge("completed")] : null,
        ),
      ),
      h(
        "div",
        { class: "row bar", "data-needs": "operator" },
        prepared ? h("button", { type: "button", dataset: { key: "commit" }, onclick: (e) => settle(e.currentTarget, "commit") }, "Commit…") : null,
        prepared
          ? h("button", { type: "button", class: "quiet", dataset: { key: "rollback" }, onclick: (e) => settle(e.currentTarget, "rollback") }, "Roll back…")
          : null,
        message.state === "committed"
          ? h("button", { type: "button", dataset: { key: "resend-all" }, onclick: (e) => resend(e.currentTarget) }, "Re-send all deliveries")
          : null,
        anyPending
          ? h("button", { type: "button", class: "quiet", dataset: { key: "dead-all" }, onclick: (e) => markDead(e.currentTarget) }, "Mark pending as dead")
          : null,
        h("button", { type: "button", class: "danger", dataset: { key: "delete" }, onclick: (e) => remove(e.currentTarget) }, "Delete…"),
      ),
      h(
        "div",
        { class: "grid" },
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-facts" },
          h("h2", { id: "h-facts" }, "Details"),
          h(
            "dl",
            { class: "facts" },
            [
              ["Topic", message.topic],
              ["Tag", message.tag ?? "—"],
              ["Business key", message.key ?? "—"],
              ["App", message.app ?? "— (sent with the admin key)"],
              ["Created", time(message.createdAt, { ms: true })],
              ["Deliver at", time(message.deliverAt)],
              ["Committed", time(message.committedAt)],
              message.rolledBackAt ? ["Rolled back", time(message.rolledBackAt)] : null,
              message.checks > 0 || prepared ? ["Check-backs", String(message.checks)] : null,
              message.nextCheckAt ? ["Next check-back", time(message.nextCheckAt)] : null,
              message.inDoubtAt ? ["In doubt since", time(message.inDoubtAt)] : null,
              message.completedAt ? ["Completed (every consumer applied it)", time(message.completedAt)] : null,
            ]
              .filter(Boolean)
              .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
          ),
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "h-headers" },
          h("h2", { id: "h-headers" }, "Headers"),
          Object.keys(message.headers).length
            ? h(
                "dl",
                { class: "facts" },
                Object.entries(message.headers).map(([k, v]) => [h("dt", { class: "mono" }, k), h("dd", { class: "mono" }, v)]),
              )
            : h("p", { class: "empty" }, "No headers."),
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-deliveries" },
        h("h2", { id: "h-deliveries" }, "Deliveries"),
        table(
          [
            { label: "Subscription" },
            { label: "State" },
            { label: "Attempts", class: "num" },
            { label: "Last status", class: "wide-only" },
            { label: "Next attempt / ended", class: "wide-only" },
            { label: "Consumer" },
            { label: "Actions" },
          ],
          deliveries.map((d) => [
            h("a", { href: `#/subscriptions/${enc(d.subscription)}` }, d.subscription),
            h("span", {}, badge(d.state), d.deadReason ? h("div", { class: "small muted" }, d.deadReason) : null),
            String(d.attempts),
            d.lastStatus === null ? (d.lastError ? "error" : "—") : `HTTP ${d.lastStatus}`,
            d.state === "pending" ? time(d.nextAttemptAt) : time(d.deliveredAt ?? d.deadAt),
            // What the consumer reported it did; nothing reported: delivered means what it always meant.
            d.outcome
              ? h(
                  "span",
                  { dataset: { outcome: d.outcome } },
                  badge(d.outcome),
                  " ",
                  time(d.outcomeAt),
                  d.outcomeError ? h("div", { class: "small err" }, d.outcomeError) : null,
                )
              : h("span", { class: "muted" }, "not reported"),
            h(
              "div",
              { class: "row", "data-needs": "operator" },
              h(
                "button",
                {
                  type: "button",
                  class: "small",
                  dataset: { key: `resend:${d.subscription}` },
                  "aria-label": `Re-send to ${d.subscription}`,
                  onclick: (e) => resend(e.currentTarget, d.subscription),
                },
                "Re-send",
              ),
              d.state === "pending"
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "small quiet",
                      dataset: { key: `dead:${d.subscription}` },
                      "aria-label": `Mark the delivery to ${d.subscription} dead`,
                      onclick: (e) => markDead(e.currentTarget, d.subscription),
                    },
                    "Mark dead",
                  )
                : null,
            ),
          ]),
          { empty: "No subscription matched this message." },
        ),
      ),
      h("section", { class: "panel", "aria-labelledby": "h-timeline" }, h("h2", { id: "h-timeline" }, "Timeline"), timeline(attempts.items, deliveries)),
      checks.items.length
        ? h(
            "section",
            { class: "panel", "aria-labelledby": "h-checks" },
            h("h2", { id: "h-checks" }, "Check-backs"),
            table(
              [
                { label: "When" },
                { label: "#", class: "num" },
                { label: "Answer" },
                { label: "Status", class: "wide-only" },
                { label: "Latency", class: "num wide-only" },
                { label: "Error" },
              ],
              checks.items.map((c) => [
                time(c.at, { ms: true }),
                String(c.check),
                c.answer ?? "—",
                c.statusCode === null ? "no answer" : `HTTP ${c.statusCode}`,
                `${c.latencyMs} ms`,
                c.error ?? "—",
              ]),
            ),
          )
        : null,
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-payload" },
        h("h2", { id: "h-payload" }, "Payload"),
        h("pre", { class: "json", tabindex: "0" }, JSON.stringify(message.payload, null, 2)),
      ),
    );
    if (focused) (focused === "h1" ? view.querySelector("h1") : view.querySelector(`[data-key="${CSS.escape(focused)}"]`))?.focus();
    ctx.title(`Message ${id}`);
    if (anyPending || (prepared && !message.inDoubtAt)) timer = setTimeout(() => void draw().catch(() => {}), followDelay(round++));
  }

  await draw();
}
