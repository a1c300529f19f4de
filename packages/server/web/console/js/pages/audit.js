import { api, qs } from "../api.js";
import { formValues, h, table, time } from "../dom.js";

const FILTERS = ["actor", "action", "target", "since", "until"];
/** Filters typed as local date and time in the form; the API takes them as ISO instants. */
const TIMES = new Set(["since", "until"]);

function apiValue(name, value) {
  if (!TIMES.has(name)) return value;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

const short = (value) => (value === undefined ? "—" : JSON.stringify(value));

/** What a configuration change changed, field by field (`updatedAt` left out): `role: "viewer" → "operator"`. */
function changes(entry) {
  if (entry.before === null && entry.after === null) return [];
  const before = entry.before ?? {};
  const after = entry.after ?? {};
  if (entry.before === null) return ["created"];
  if (entry.after === null) return ["deleted"];
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((n) => n !== "updatedAt");
  return names.filter((n) => short(before[n]) !== short(after[n])).map((n) => `${n}: ${short(before[n])} → ${short(after[n])}`);
}

/** One entry's what-changed cell: the fields changed, the options and outcome, and the whole entry on demand. */
function detailCell(entry) {
  const lines = [...changes(entry)];
  if (entry.detail?.request) lines.push(`asked: ${short(entry.detail.request)}`);
  if (entry.detail?.result) lines.push(`result: ${short(entry.detail.result)}`);
  return h(
    "div",
    {},
    lines.map((line) => h("div", { class: "small mono" }, line)),
    entry.before || entry.after
      ? h(
          "details",
          {},
          h("summary", { class: "small" }, "before / after"),
          h("pre", { class: "small" }, JSON.stringify({ before: entry.before, after: entry.after }, null, 2)),
        )
      : null,
  );
}

/** The audit log: who changed what and did what by hand, newest first, with filters and keyset paging. */
export async function renderAudit(ctx) {
  ctx.title("Audit");
  const q = Object.fromEntries(ctx.query);
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter the audit log",
      onsubmit: (event) => {
        event.preventDefault();
        ctx.navigate(`#/audit${qs(formValues(form))}`);
      },
    },
    h("label", {}, "Who", h("input", { name: "actor", type: "search", value: q.actor ?? "", autocomplete: "off", placeholder: "operator, app or admin key" })),
    h(
      "label",
      {},
      "Action",
      h("input", { name: "action", type: "search", value: q.action ?? "", autocomplete: "off", placeholder: "e.g. subscription or message.resend" }),
    ),
    h(
      "label",
      {},
      "Target",
      h("input", { name: "target", type: "search", value: q.target ?? "", autocomplete: "off", placeholder: "e.g. subscription/billing" }),
    ),
    h("label", {}, "Since", h("input", { name: "since", type: "datetime-local", step: 1, value: q.since ?? "" })),
    h("label", {}, "Until", h("input", { name: "until", type: "datetime-local", step: 1, value: q.until ?? "" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Filter"), h("a", { href: "#/audit", class: "button quiet" }, "Clear")),
  );
  const results = h("section", { "aria-label": "Audit entries", id: "audit-entries" });
  ctx.main.append(h("h1", {}, "Audit"), h("div", { class: "panel" }, form), h("div", { class: "panel" }, results));

  const params = Object.fromEntries(FILTERS.filter((k) => q[k]).map((k) => [k, q[k]]));
  const asked = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, apiValue(k, v)]));
  const page = await api.get(`/v1/audit${qs({ ...asked, cursor: q.cursor, limit: 50 })}`);
  if (!ctx.current()) return;
  results.append(
    h("h2", {}, q.cursor ? "Older entries" : "Newest first"),
    table(
      [{ label: "When" }, { label: "Who" }, { label: "Action" }, { label: "Target" }, { label: "What changed" }, { label: "From", class: "wide-only" }],
      page.items.map((e) => [
        time(e.at),
        e.actorKind === "operator" ? e.actor : `${e.actor}${e.actorKind === "app" ? " (app)" : ""}`,
        { value: e.action, class: "mono" },
        { value: e.target ? h("a", { href: `#/audit${qs({ target: e.target })}` }, e.target) : "—", class: "id" },
        detailCell(e),
        e.address ?? "—",
      ]),
      { empty: "No entry matches." },
    ),
    h(
      "div",
      { class: "row" },
      q.cursor ? h("a", { class: "button quiet", href: `#/audit${qs(params)}` }, "Newest") : null,
      page.nextCursor ? h("a", { class: "button quiet", href: `#/audit${qs({ ...params, cursor: page.nextCursor })}` }, "Older →") : null,
    ),
  );
}
