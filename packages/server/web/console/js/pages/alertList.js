import { api, enc } from "../api.js";
import { act, badge, h, notify, table, time } from "../dom.js";

/** Each condition's badge: its colour class and its label. */
const CONDITIONS = {
  delivery_dead: ["dead", "dead deliveries"],
  key_blocked: ["dead", "keys blocked"],
  message_in_doubt: ["prepared", "in doubt"],
  circuit_open: ["dead", "circuit open"],
  subscription_auto_paused: ["dead", "auto-paused"],
  pending_too_old: ["pending", "waiting too long"],
  check_url_failing: ["dead", "check URL failing"],
};
const STATES = { open: ["dead", "open"], acknowledged: ["pending", "acknowledged"], resolved: ["delivered", "resolved"] };

/** Who acknowledged or resolved it, and their note. */
function handledBy(a) {
  const lines = [];
  if (a.acknowledgedBy) lines.push(`acknowledged by ${a.acknowledgedBy}${a.acknowledgeNote ? `: ${a.acknowledgeNote}` : ""}`);
  if (a.resolvedBy) lines.push(`resolved by ${a.resolvedBy}${a.resolveNote ? `: ${a.resolveNote}` : ""}`);
  return lines.length
    ? h(
        "div",
        { class: "small" },
        lines.map((l) => h("div", {}, l)),
      )
    : "—";
}

/** The latest occurrences' messages, as links: three, and the rest folded. */
function examples(a) {
  const links = a.examples.filter((e) => e.messageId).map((e) => h("div", { class: "id" }, h("a", { href: `#/messages/${enc(e.messageId)}` }, e.messageId)));
  if (links.length === 0) return "—";
  return h(
    "div",
    { class: "small" },
    links.slice(0, 3),
    links.length > 3 ? h("details", {}, h("summary", {}, `${links.length - 3} more`), links.slice(3)) : null,
  );
}

/**
 * Grouped alerts: state, what and about what, how many since when, the latest examples, who
 * handled them; acknowledge or resolve with a note. `changed` runs after an action.
 */
export function alertTable(alerts, { changed, empty = "No open alert." } = {}) {
  return table(
    [
      { label: "State" },
      { label: "What" },
      { label: "Count", class: "num" },
      { label: "First / last", class: "wide-only" },
      { label: "Examples", class: "wide-only" },
      { label: "Handled", class: "wide-only" },
      { label: "" },
    ],
    alerts.map((a) => {
      const note = h("input", { type: "text", name: "note", maxlength: "1000", placeholder: "note", "aria-label": `Note for alert ${a.id}` });
      const action = (verb, path) =>
        h(
          "button",
          {
            type: "button",
            class: "small quiet",
            "aria-label": `${verb} alert ${a.id}`,
            onclick: async (e) => {
              const body = note.value.trim() ? { note: note.value.trim() } : {};
              const done = await act(e.currentTarget, () => api.post(`/v1/alerts/${a.id}/${path}`, body));
              if (done) {
                notify(`Alert ${a.id} ${done.state}.`);
                changed?.(done);
              }
            },
          },
          verb,
        );
      return [
        badge(...STATES[a.state]),
        h(
          "span",
          {},
          badge(...(CONDITIONS[a.condition] ?? ["prepared", a.condition])),
          " ",
          a.link ? h("a", { href: a.link }, a.subject) : a.subject,
          h("div", { class: "small muted" }, a.detail),
          a.nextStep && a.state !== "resolved" ? h("div", { class: "small" }, `Next: ${a.nextStep}`) : null,
        ),
        String(a.count),
        h("span", { class: "small" }, time(a.firstAt), h("br"), time(a.lastAt)),
        examples(a),
        handledBy(a),
        a.state === "resolved"
          ? "—"
          : h(
              "div",
              { class: "row", "data-needs": "operator" },
              note,
              a.state === "open" ? action("Acknowledge", "acknowledge") : null,
              action("Resolve", "resolve"),
            ),
      ];
    }),
    { empty },
  );
}
