import { h } from "../dom.js";

/** The fields of a subscription, empty (to create one) or filled (to edit one). */
export function subscriptionFields(s = null) {
  const list = (items) => (items ?? []).join(", ");
  return h(
    "div",
    { class: "form-grid" },
    s
      ? null
      : h(
          "label",
          {},
          "Name",
          h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}", autocomplete: "off" }),
          h("span", { class: "hint" }, "lower-case letters, digits, _ . -"),
        ),
    h("label", {}, "Topic", h("input", { name: "topic", required: true, value: s?.topic ?? "", autocomplete: "off" })),
    h(
      "label",
      {},
      "Tags",
      h("input", { name: "tags", value: list(s?.tags), autocomplete: "off" }),
      h("span", { class: "hint" }, "comma-separated; empty: every tag"),
    ),
    h("label", { class: "wide" }, "Endpoint URL", h("input", { name: "url", type: "url", required: true, value: s?.endpoint.url ?? "", autocomplete: "off" })),
    h(
      "label",
      {},
      "Retry schedule",
      h("input", { name: "schedule", value: list(s?.retry.schedule), placeholder: "1m, 5m, 10m, 30m, 1h, 2h, 5h, 10h", autocomplete: "off" }),
      h("span", { class: "hint" }, "delays between attempts; empty: the default"),
    ),
    h("label", {}, "Max attempts", h("input", { name: "maxAttempts", type: "number", min: 1, max: 1000, value: s?.retry.maxAttempts ?? "" })),
    h(
      "label",
      {},
      "Retry window",
      h("input", { name: "window", value: s?.retry.window ?? "", placeholder: "e.g. 24h", autocomplete: "off" }),
      h("span", { class: "hint" }, "no attempt after this long; empty: none"),
    ),
    h(
      "label",
      {},
      "Ordering",
      h(
        "select",
        { name: "ordering" },
        h("option", { value: "none", selected: (s?.ordering ?? "none") === "none" }, "none: any order"),
        h("option", { value: "key", selected: s?.ordering === "key" }, "by key: one at a time, in order"),
      ),
      h("span", { class: "hint" }, "messages with the same key; keyless ones are not ordered"),
    ),
    h(
      "label",
      {},
      "A dead delivery (ordered by key)",
      h(
        "select",
        { name: "onDead" },
        h("option", { value: "block", selected: (s?.onDead ?? "block") === "block" }, "blocks its key until re-sent, skipped or deleted"),
        h("option", { value: "skip", selected: s?.onDead === "skip" }, "is skipped: the next goes"),
      ),
    ),
    h(
      "label",
      {},
      "Max in flight",
      h("input", { name: "maxInFlight", type: "number", min: 1, max: 10000, value: s?.maxInFlight ?? "" }),
      h("span", { class: "hint" }, "deliveries at once, across all processes; empty: the service's default"),
    ),
    h(
      "label",
      {},
      "Rate limit",
      h("input", { name: "rateLimit", type: "number", min: 0, max: 100000, step: "any", value: s?.rateLimit ?? "" }),
      h("span", { class: "hint" }, "attempts per second, across all processes; empty: none"),
    ),
    h(
      "label",
      {},
      "Pending-age alert",
      h("input", {
        name: "pendingAgeAlert",
        value: s?.pendingAgeAlert === false ? "off" : (s?.pendingAgeAlert ?? ""),
        placeholder: "e.g. 15m",
        autocomplete: "off",
      }),
      h("span", { class: "hint" }, "an alert when the oldest pending delivery waits longer (1s to 30d); off: none; empty: the service's default"),
    ),
    circuitFields(s ? s.circuit : undefined),
  );
}

/** Which conditions open the circuit: none (no breaker), failures in a row, a failure ratio, or either. */
function circuitMode(c) {
  if (c === undefined) return "failures";
  if (c === null) return "off";
  if (c.failureRatio === null) return "failures";
  return c.failures === null ? "ratio" : "either";
}

/** The circuit breaker's fields; those of conditions not chosen are hidden (and not sent). */
function circuitFields(c) {
  const field = (label, input, hint) => h("label", {}, label, input, h("span", { class: "hint" }, hint));
  const failures = h("input", { name: "failures", type: "number", min: 1, max: 1000000, value: c?.failures ?? "", placeholder: "20" });
  const failureRatio = h("input", { name: "failureRatio", type: "number", min: 0.01, max: 1, step: 0.01, value: c?.failureRatio ?? "", placeholder: "0.5" });
  const inARow = [field("Failures in a row", failures, "failed attempts in a row that open it; empty: 20")];
  const ratio = [
    field("Failure ratio", failureRatio, "the share of attempts failed in the window that opens it, e.g. 0.5"),
    field(
      "Ratio window",
      h("input", { name: "ratioWindow", value: c?.window ?? "", placeholder: "60s", autocomplete: "off" }),
      "attempts are counted in windows this long; empty: 60s",
    ),
    field(
      "Least attempts",
      h("input", { name: "minAttempts", type: "number", min: 1, max: 1000000, value: c?.minAttempts ?? "", placeholder: "20" }),
      "the ratio counts once the window holds this many; empty: 20",
    ),
  ];
  const always = [
    field(
      "Probe every",
      h("input", { name: "probeEvery", value: c?.probeEvery ?? "", placeholder: "30s", autocomplete: "off" }),
      "while open, one delivery goes this often; empty: 30s",
    ),
    field(
      "Pause after",
      h("input", { name: "pauseAfter", value: c ? (c.pauseAfter ?? "never") : "", placeholder: "3d", autocomplete: "off" }),
      "open this long, the subscription is paused; never: not paused; empty: 3d",
    ),
  ];
  const show = (mode) => {
    for (const el of inARow) el.hidden = mode !== "failures" && mode !== "either";
    for (const el of ratio) el.hidden = mode !== "ratio" && mode !== "either";
    for (const el of always) el.hidden = mode === "off";
    // A shown ratio must be given (the API would take its absence for failures in a row), as must
    // the count when either opens it.
    failureRatio.required = mode === "ratio" || mode === "either";
    failures.required = mode === "either";
  };
  const mode = circuitMode(c);
  const select = h(
    "select",
    { name: "circuit", onchange: (event) => show(event.target.value) },
    h("option", { value: "off", selected: mode === "off" }, "off: no breaker"),
    h("option", { value: "failures", selected: mode === "failures" }, "opens on a count: so many failed one after another"),
    h("option", { value: "ratio", selected: mode === "ratio" }, "opens on a ratio: a share of attempts failed"),
    h("option", { value: "either", selected: mode === "either" }, "opens on either of them"),
  );
  show(mode);
  return [field("Circuit breaker", select, "stops deliveries to a failing endpoint; one probe at a time finds it back"), ...inARow, ...ratio, ...always];
}

/** The circuit option from the form's values. */
function circuitBody(values) {
  const mode = values.circuit ?? "failures";
  if (mode === "off") return null;
  const circuit = {};
  if ((mode === "failures" || mode === "either") && values.failures) circuit.failures = Number(values.failures);
  if (mode === "ratio" || mode === "either") {
    circuit.failureRatio = Number(values.failureRatio);
    if (values.ratioWindow) circuit.window = values.ratioWindow;
    if (values.minAttempts) circuit.minAttempts = Number(values.minAttempts);
  }
  if (values.probeEvery) circuit.probeEvery = values.probeEvery;
  if (values.pauseAfter) circuit.pauseAfter = values.pauseAfter === "never" ? null : values.pauseAfter;
  return circuit;
}

/** The API body from the form's values. */
export function subscriptionBody(values, { creating }) {
  const split = (text) =>
    text
      ? text
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean)
      : null;
  const retry = {};
  if (values.schedule) retry.schedule = split(values.schedule);
  if (values.maxAttempts) retry.maxAttempts = Number(values.maxAttempts);
  if (values.window) retry.window = values.window;
  const body = {
    topic: values.topic,
    tags: split(values.tags),
    endpoint: { type: "http", url: values.url },
    ordering: values.ordering || "none",
    onDead: values.onDead || "block",
    // Emptied: back to the default (no hard limit, no rate limit).
    maxInFlight: values.maxInFlight ? Number(values.maxInFlight) : null,
    rateLimit: values.rateLimit ? Number(values.rateLimit) : null,
    // Emptied: the service's default threshold; "off": no pending-age alert.
    pendingAgeAlert: !values.pendingAgeAlert?.trim() ? null : values.pendingAgeAlert.trim() === "off" ? false : values.pendingAgeAlert.trim(),
    circuit: circuitBody(values),
  };
  if (creating) body.name = values.name;
  if (creating ? Object.keys(retry).length > 0 : true) body.retry = retry;
  return body;
}
