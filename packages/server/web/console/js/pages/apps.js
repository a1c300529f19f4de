import { api, enc } from "../api.js";
import { act, badge, confirmAction, formValues, h, notify, openDialog, showSecrets, table, time } from "../dom.js";

/** Producer apps: create (key and secret shown once), change the check URL, rotate the key or secret, disable and enable, delete. */
export async function renderApps(ctx) {
  ctx.title("Apps");
  const { items } = await api.get("/v1/apps");
  if (!ctx.current()) return;

  const edit = async (app) => {
    const input = h("input", { type: "url", name: "checkUrl", value: app.checkUrl ?? "", id: "check-url-edit" });
    const save = await openDialog({
      title: `Check URL of ${app.name}`,
      body: [
        h(
          "label",
          { for: "check-url-edit" },
          "Check URL",
          input,
          h("span", { class: "hint" }, "where Tidings asks whether a prepared message committed; empty: none"),
        ),
      ],
      buttons: [
        { label: "Cancel", value: false, class: "quiet" },
        { label: "Save", value: true },
      ],
    });
    if (!save) return;
    const value = input.value.trim();
    const updated = await act(null, () => api.patch(`/v1/apps/${enc(app.name)}`, { checkUrl: value === "" ? null : value }));
    if (updated) {
      notify(`${app.name} saved.`);
      ctx.navigate("#/apps");
    }
  };
  const toggle = async (button, app) => {
    if (
      app.enabled &&
      !(await confirmAction(
        `Disable ${app.name}?`,
        "Its API key is refused (403 app_disabled) until it is enabled again. Its messages are still delivered and checked back.",
        "Disable app",
        { danger: true },
      ))
    )
      return;
    const updated = await act(button, () => api.patch(`/v1/apps/${enc(app.name)}`, { enabled: !app.enabled }));
    if (updated) {
      notify(updated.enabled ? `${app.name} enabled: its key works again.` : `${app.name} disabled: its key is refused.`);
      ctx.navigate("#/apps");
    }
  };
  const rotate = async (button, app) => {
    const which = await openDialog({
      title: `Rotate a credential of ${app.name}`,
      body: [
        h("p", {}, "A new API key: the producer must send it from now on; the old key stops working at once."),
        h("p", {}, "A new check-back secret: the producer's check-back handler must verify with it from now on."),
        h("p", { class: "muted small" }, "The new value is shown once."),
      ],
      buttons: [
        { label: "Cancel", value: false, class: "quiet" },
        { label: "New check-back secret", value: "secret", class: "quiet" },
        { label: "New API key", value: "key" },
      ],
    });
    if (!which) return;
    const updated = await act(button, () => api.patch(`/v1/apps/${enc(app.name)}`, which === "key" ? { rotateKey: true } : { rotateSecret: true }));
    if (updated)
      await showSecrets(`New ${which === "key" ? "API key" : "check-back secret"} of ${app.name}`, [
        which === "key" ? ["API key", updated.apiKey] : ["Check-back signing secret", updated.secret],
      ]);
  };
  const remove = async (button, app) => {
    if (!(await confirmAction(`Delete ${app.name}?`, "Its API key stops working at once. Its messages stay.", "Delete app", { danger: true }))) return;
    const done = await act(button, () => api.delete(`/v1/apps/${enc(app.name)}`).then(() => true));
    if (done) {
      notify(`${app.name} deleted.`);
      ctx.navigate("#/apps");
    }
  };

  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const values = formValues(form);
        const created = await act(form.querySelector("button[type=submit]"), () =>
          api.post("/v1/apps", { name: values.name, checkUrl: values.checkUrl ?? null }),
        );
        if (!created) return;
        await showSecrets(`App ${created.name} created`, [
          ["API key", created.apiKey],
          ["Check-back signing secret", created.secret],
        ]);
        ctx.navigate("#/apps");
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h(
        "label",
        {},
        "Name",
        h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}", autocomplete: "off" }),
        h("span", { class: "hint" }, "lower-case letters, digits, _ . -"),
      ),
      h("label", {}, "Check URL", h("input", { name: "checkUrl", type: "url", autocomplete: "off" }), h("span", { class: "hint" }, "optional")),
    ),
    h("button", { type: "submit" }, "Create app"),
  );

  ctx.main.append(
    h("h1", {}, "Apps"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-list" },
      h("h2", { id: "h-list" }, "Producer apps"),
      table(
        [{ label: "Name" }, { label: "Check URL" }, { label: "Created", class: "wide-only" }, { label: "Status" }, { label: "" }],
        items.map((app) => [
          app.name,
          { value: app.checkUrl ?? "—", class: "id" },
          time(app.createdAt),
          app.enabled ? badge("enabled") : badge("disabled"),
          h(
            "div",
            { class: "row", "data-needs": "admin" },
            h("button", { type: "button", class: "small quiet", "aria-label": `Change the check URL of ${app.name}`, onclick: () => edit(app) }, "Edit"),
            h(
              "button",
              {
                type: "button",
                class: "small quiet",
                "aria-label": `Rotate the API key or secret of ${app.name}`,
                onclick: (e) => rotate(e.currentTarget, app),
              },
              "Rotate…",
            ),
            h(
              "button",
              {
                type: "button",
                class: "small quiet",
                "aria-label": `${app.enabled ? "Disable" : "Enable"} ${app.name}`,
                onclick: (e) => toggle(e.currentTarget, app),
              },
              app.enabled ? "Disable…" : "Enable",
            ),
            h("button", { type: "button", class: "small danger", "aria-label": `Delete ${app.name}`, onclick: (e) => remove(e.currentTarget, app) }, "Delete…"),
          ),
        ]),
        { empty: "No app yet: create one below." },
      ),
      h(
        "p",
        { class: "small muted" },
        "An app's API key and secret are shown once, when it is created or rotated. A disabled app's key is refused until it is enabled again; its messages are still delivered.",
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-new", "data-needs": "admin" }, h("h2", { id: "h-new" }, "New app"), form),
  );
}
