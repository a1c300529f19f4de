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
  );
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
  };
  if (creating) body.name = values.name;
  if (creating ? Object.keys(retry).length > 0 : true) body.retry = retry;
  return body;
}
