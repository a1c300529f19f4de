import { api, enc, qs } from "../api.js";
import { badge, formValues, fullId, h, notify, table, time } from "../dom.js";

const FILTERS = ["id", "key", "topic", "tag", "state", "app", "subscription", "deliveryState", "createdAfter", "createdBefore"];
/** Filters typed as local date and time in the form; the API takes them as ISO instants. */
const TIMES = new Set(["createdAfter", "createdBefore"]);

function apiValue(name, value) {
  if (!TIMES.has(name)) return value;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

function select(name, label, options, value) {
  return h(
    "label",
    {},
    label,
    h(
      "select",
      { name },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: o === value }, o.replace("_", " "))),
    ),
  );
}

/** Search by id, business key, topic, tag, state, app, subscription, delivery state and time range; keyset paging. */
export async function renderMessages(ctx) {
  ctx.title("Messages");
  const q = Object.fromEntries(ctx.query);
  const subscriptions = (await api.get("/v1/subscriptions")).items.map((s) => s.name);
  if (!ctx.current()) return;
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Find messages",
      onsubmit: async (event) => {
        event.preventDefault();
        const values = formValues(form);
        if (values.id) {
          // Each app has its own ids: an id may name one message in several apps. One: open it;
          // several: list them; none: say so.
          try {
            const found = await api.get(`/v1/messages${qs({ id: values.id, limit: 2 })}`);
            if (found.items.length === 1) return ctx.navigate(`#/messages/${enc(fullId(found.items[0]))}`);
            if (found.items.length > 1) return ctx.navigate(`#/messages${qs({ id: values.id })}`);
            results.replaceChildren(h("p", { class: "empty", role: "status" }, `No message has the id ${values.id}.`));
          } catch (error) {
            notify(error.message, { error: true });
          }
          return;
        }
        ctx.navigate(`#/messages${qs(values)}`);
      },
    },
    h("label", {}, "Message id", h("input", { name: "id", type: "search", value: q.id ?? "", autocomplete: "off", placeholder: "id or app/id" })),
    h("label", {}, "Business key", h("input", { name: "key", type: "search", value: q.key ?? "", autocomplete: "off" })),
    h("label", {}, "Topic", h("input", { name: "topic", type: "search", value: q.topic ?? "", autocomplete: "off" })),
    h("label", {}, "Tag", h("input", { name: "tag", type: "search", value: q.tag ?? "", autocomplete: "off" })),
    select("state", "Message state", ["committed", "prepared", "in_doubt", "rolled_back"], q.state),
    h("label", {}, "App", h("input", { name: "app", type: "search", value: q.app ?? "", autocomplete: "off" })),
    select("subscription", "Subscription", subscriptions, q.subscription),
    select("deliveryState", "Delivery state", ["pending", "delivered", "dead"], q.deliveryState),
    h("label", {}, "Created after", h("input", { name: "createdAfter", type: "datetime-local", step: 1, value: q.createdAfter ?? "" })),
    h("label", {}, "Created before", h("input", { name: "createdBefore", type: "datetime-local", step: 1, value: q.createdBefore ?? "" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Search"), h("a", { href: "#/messages", class: "button quiet" }, "Clear")),
  );
  const results = h("section", { "aria-label": "Results", id: "results" });
  ctx.main.append(h("h1", {}, "Messages"), h("div", { class: "panel" }, form), h("div", { class: "panel" }, results));

  const params = Object.fromEntries(FILTERS.filter((k) => q[k]).map((k) => [k, q[k]]));
  const asked = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, apiValue(k, v)]));
  const page = await api.get(`/v1/messages${qs({ ...asked, cursor: q.cursor, limit: 50 })}`);
  if (!ctx.current()) return;
  results.append(
    h("h2", {}, q.cursor ? "Older results" : "Newest first"),
    table(
      [
        { label: "Id" },
        { label: "Topic" },
        { label: "Tag", class: "wide-only" },
        { label: "Key" },
        { label: "State", class: "wide-only" },
        { label: "Created", class: "wide-only" },
      ],
      page.items.map((m) => [
        { value: h("a", { href: `#/messages/${enc(fullId(m))}` }, fullId(m)), class: "id" },
        m.topic,
        m.tag ?? "—",
        m.key ?? "—",
        badge(m.state),
        time(m.createdAt),
      ]),
      { empty: "No message matches." },
    ),
    h(
      "div",
      { class: "row" },
      q.cursor ? h("a", { class: "button quiet", href: `#/messages${qs(params)}` }, "Newest") : null,
      page.nextCursor ? h("a", { class: "button quiet", href: `#/messages${qs({ ...params, cursor: page.nextCursor })}` }, "Older →") : null,
    ),
  );
}
