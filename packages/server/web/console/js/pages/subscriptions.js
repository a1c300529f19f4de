import { api, enc } from "../api.js";
import { act, badge, formValues, h, notify, showSecrets, table } from "../dom.js";
import { subscriptionBody, subscriptionFields } from "./subscriptionForm.js";

/** All subscriptions, pause/resume at a click, and a form for a new one. */
export async function renderSubscriptions(ctx) {
  ctx.title("Subscriptions");
  const { items } = await api.get("/v1/subscriptions");
  if (!ctx.current()) return;

  const toggle = async (button, s) => {
    const updated = await act(button, () => api.patch(`/v1/subscriptions/${enc(s.name)}`, { enabled: !s.enabled }));
    if (updated) {
      notify(`${s.name} is ${updated.enabled ? "active again" : "paused"}.`);
      ctx.navigate("#/subscriptions");
    }
  };

  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const button = form.querySelector("button[type=submit]");
        const created = await act(button, () => api.post("/v1/subscriptions", subscriptionBody(formValues(form), { creating: true })));
        if (!created) return;
        await showSecrets(`Subscription ${created.name} created`, [["Signing secret", created.secret]]);
        ctx.navigate(`#/subscriptions/${enc(created.name)}`);
      },
    },
    subscriptionFields(),
    h("button", { type: "submit" }, "Create subscription"),
  );

  ctx.main.append(
    h("h1", {}, "Subscriptions"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-list" },
      h("h2", { id: "h-list" }, "Subscriptions"),
      table(
        [
          { label: "Name" },
          { label: "Topic" },
          { label: "Tags", class: "wide-only" },
          { label: "Endpoint", class: "wide-only" },
          { label: "Status" },
          { label: "" },
        ],
        items.map((s) => [
          h("a", { href: `#/subscriptions/${enc(s.name)}` }, s.name),
          s.topic,
          s.tags ? s.tags.join(", ") : "every tag",
          { value: s.endpoint.url, class: "id" },
          s.enabled ? badge("active") : badge("paused"),
          h(
            "button",
            {
              type: "button",
              class: "small quiet",
              "data-needs": "admin",
              "aria-label": `${s.enabled ? "Pause" : "Resume"} ${s.name}`,
              onclick: (e) => toggle(e.currentTarget, s),
            },
            s.enabled ? "Pause" : "Resume",
          ),
        ]),
        { empty: "No subscription yet: create one below." },
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-new", "data-needs": "admin" }, h("h2", { id: "h-new" }, "New subscription"), form),
  );
}
