import { api, enc, qs } from "../api.js";
import { badge, formatCount, formValues, h, table, time } from "../dom.js";

const FILTERS = ["kind", "subscription", "topic", "differences"];

/** What a run looked at: its subscription, or its topic. */
const subject = (r) =>
  r.subscription ? h("a", { href: `#/subscriptions/${enc(r.subscription)}` }, r.subscription) : h("span", { class: "mono" }, r.topic ?? "—");

/** The run's outcome at a glance: clean, repaired, or with failures left. */
function outcome(r) {
  if (r.counts.failed > 0) return badge("failed", `${formatCount(r.counts.failed)} failed`);
  if (r.counts.missing > 0) return badge("delivered", `${formatCount(r.counts.repaired)} repaired`);
  return badge("enabled", "no difference");
}

const seconds = (r) => `${((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000).toFixed(1)} s`;

/** Reconciliation runs reported by consumers and producers, newest first, or one run with its differences. */
export async function renderReconciliation(ctx) {
  if (ctx.parts[1] !== undefined) return renderRun(ctx, ctx.parts[1]);
  ctx.title("Reconciliation");
  const q = Object.fromEntries(ctx.query);
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter the runs",
      onsubmit: (event) => {
        event.preventDefault();
        ctx.navigate(`#/reconciliation${qs(formValues(form))}`);
      },
    },
    h(
      "label",
      {},
      "Kind",
      h(
        "select",
        { name: "kind" },
        [
          ["", "any"],
          ["consumer", "consumer"],
          ["producer", "producer"],
        ].map(([value, label]) => h("option", { value, selected: (q.kind ?? "") === value }, label)),
      ),
    ),
    h("label", {}, "Subscription", h("input", { name: "subscription", type: "search", value: q.subscription ?? "", autocomplete: "off" })),
    h("label", {}, "Topic", h("input", { name: "topic", type: "search", value: q.topic ?? "", autocomplete: "off" })),
    h(
      "label",
      {},
      "Runs",
      h(
        "select",
        { name: "differences" },
        h("option", { value: "", selected: q.differences !== "true" }, "all"),
        h("option", { value: "true", selected: q.differences === "true" }, "with differences"),
      ),
    ),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Filter"), h("a", { href: "#/reconciliation", class: "button quiet" }, "Clear")),
  );
  const results = h("section", { "aria-label": "Reconciliation runs", id: "reconciliation-runs" });
  ctx.main.append(
    h("h1", {}, "Reconciliation"),
    h(
      "p",
      { class: "muted" },
      "Each run compares a window of messages: a consumer, the service's committed messages with its inbox (the missing ones applied); a producer, its outbox with the service.",
    ),
    h("div", { class: "panel" }, form),
    h("div", { class: "panel" }, results),
  );
  const params = Object.fromEntries(FILTERS.filter((k) => q[k]).map((k) => [k, q[k]]));
  const page = await api.get(`/v1/reconciliations${qs({ ...params, cursor: q.cursor, limit: 50 })}`);
  if (!ctx.current()) return;
  results.append(
    h("h2", {}, q.cursor ? "Older runs" : "Newest first"),
    table(
      [
        { label: "Run" },
        { label: "Started" },
        { label: "Kind" },
        { label: "Of" },
        { label: "Window", class: "wide-only" },
        { label: "Checked", class: "num" },
        { label: "Missing", class: "num" },
        { label: "Repaired", class: "num" },
        { label: "Failed", class: "num" },
        { label: "Outcome" },
        { label: "Reporter", class: "wide-only" },
      ],
      page.items.map((r) => [
        h("a", { href: `#/reconciliation/${r.id}` }, `#${r.id}`),
        time(r.startedAt),
        r.kind,
        subject(r),
        h("span", { class: "small" }, time(r.since), " – ", time(r.until)),
        formatCount(r.counts.checked),
        formatCount(r.counts.missing),
        formatCount(r.counts.repaired),
        formatCount(r.counts.failed),
        outcome(r),
        { value: `${r.reporter}${r.app ? ` (${r.app})` : ""}`, class: "mono" },
      ]),
      { empty: "No run reported yet. The SDK's reconciler reports each run here." },
    ),
    h(
      "div",
      { class: "row" },
      q.cursor ? h("a", { class: "button quiet", href: `#/reconciliation${qs(params)}` }, "Newest") : null,
      page.nextCursor ? h("a", { class: "button quiet", href: `#/reconciliation${qs({ ...params, cursor: page.nextCursor })}` }, "Older →") : null,
    ),
  );
}

const PROBLEMS = {
  missing: "missing from the consumer",
  failed: "handling failed",
  unknown_to_service: "sent, unknown to the service",
  not_sent: "never sent",
};
const ACTIONS = { applied: ["delivered", "applied"], resent: ["delivered", "re-sent"], none: ["pending", "listed"], failed: ["failed", "repair failed"] };

/** One run: its counts and every difference listed, with what was done about it. */
async function renderRun(ctx, id) {
  ctx.title(`Reconciliation #${id}`);
  const r = await api.get(`/v1/reconciliations/${enc(id)}`);
  if (!ctx.current()) return;
  const facts = [
    ["Kind", r.kind],
    ["Of", subject(r)],
    ["Window", h("span", {}, time(r.since), " – ", time(r.until))],
    ["Ran", h("span", {}, time(r.startedAt), ` for ${seconds(r)}`)],
    ["Reported by", `${r.reporter}${r.app ? ` (app ${r.app})` : ""}`],
    ["Checked", formatCount(r.counts.checked)],
    ["Missing", formatCount(r.counts.missing)],
    ["Repaired", formatCount(r.counts.repaired)],
    ["Failed", formatCount(r.counts.failed)],
  ];
  // A consumer's differences are the service's messages; a producer's are rows the service does not have.
  const linkable = () => r.kind === "consumer";
  ctx.main.append(
    h("p", {}, h("a", { href: "#/reconciliation" }, "← Reconciliation")),
    h("h1", {}, `Run #${r.id} `, outcome(r)),
    h(
      "div",
      { class: "panel" },
      h(
        "dl",
        { class: "facts" },
        facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-label": "Differences", id: "reconciliation-differences" },
      h("h2", {}, "Differences found"),
      table(
        [{ label: "Message" }, { label: "Found" }, { label: "Done" }, { label: "Error" }],
        r.differences.map((d) => [
          { value: linkable(d) ? h("a", { href: `#/messages/${enc(d.id)}` }, d.id) : d.id, class: "id" },
          PROBLEMS[d.problem] ?? d.problem,
          badge(...(ACTIONS[d.action] ?? ["pending", d.action])),
          d.error ? h("span", { class: "small error-text" }, d.error) : "—",
        ]),
        { empty: "None: the two sides agreed." },
      ),
      r.differencesOmitted > 0 ? h("p", { class: "muted" }, `${formatCount(r.differencesOmitted)} more not listed in the report.`) : null,
    ),
  );
}
