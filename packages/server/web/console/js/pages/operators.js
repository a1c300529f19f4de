import { api, enc } from "../api.js";
import { act, confirmAction, formValues, h, notify, openDialog, showSecrets, table, time } from "../dom.js";

const ROLES = [
  ["viewer", "viewer: reads everything"],
  ["operator", "operator: also re-sends, marks dead, deletes, handles alerts"],
  ["admin", "admin: also apps, subscriptions, channels, operators"],
];

const roleSelect = (name, selected, id) =>
  h(
    "select",
    { name, id },
    ROLES.map(([value, label]) => h("option", { value, selected: value === selected }, label)),
  );

/**
 * People who may use the console and the API under their own name, read by everyone signed in;
 * admins also add (key shown once), change the role, rotate the key, remove.
 */
export async function renderOperators(ctx) {
  ctx.title("Operators");
  const { items } = await api.get("/v1/operators");
  if (!ctx.current()) return;

  const changeRole = async (operator) => {
    const select = roleSelect("role", operator.role, "role-edit");
    const save = await openDialog({
      title: `Role of ${operator.name}`,
      body: [h("label", { for: "role-edit" }, "Role", select, h("span", { class: "hint" }, "applies at once, to a signed-in console too"))],
      buttons: [
        { label: "Cancel", value: false, class: "quiet" },
        { label: "Save", value: true },
      ],
    });
    if (!save) return;
    const updated = await act(null, () => api.patch(`/v1/operators/${enc(operator.name)}`, { role: select.value }));
    if (updated) {
      notify(`${operator.name} is now ${updated.role}.`);
      ctx.navigate("#/operators");
    }
  };
  const rotate = async (button, operator) => {
    if (
      !(await confirmAction(
        `New key for ${operator.name}?`,
        "The old key stops working at once and their console sessions end. The new key is shown once.",
        "Issue a new key",
      ))
    )
      return;
    const updated = await act(button, () => api.patch(`/v1/operators/${enc(operator.name)}`, { rotateKey: true }));
    if (updated) await showSecrets(`New key of ${operator.name}`, [["Key", updated.key]]);
  };
  const remove = async (button, operator) => {
    if (
      !(await confirmAction(`Remove ${operator.name}?`, "Their key stops working and their console sessions end at once.", "Remove operator", { danger: true }))
    )
      return;
    const done = await act(button, () => api.delete(`/v1/operators/${enc(operator.name)}`).then(() => true));
    if (done) {
      notify(`${operator.name} removed.`);
      ctx.navigate("#/operators");
    }
  };

  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const values = formValues(form);
        const created = await act(form.querySelector("button[type=submit]"), () => api.post("/v1/operators", { name: values.name, role: values.role }));
        if (!created) return;
        await showSecrets(`Operator ${created.name} added`, [["Key", created.key]]);
        ctx.navigate("#/operators");
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h(
        "label",
        {},
        "Name",
        h("input", { name: "name", required: true, autocomplete: "off" }),
        h("span", { class: "hint" }, "as the audit log will name them"),
      ),
      h("label", { for: "role-new" }, "Role", roleSelect("role", "viewer", "role-new")),
    ),
    h("button", { type: "submit" }, "Add operator"),
  );

  ctx.main.append(
    h("h1", {}, "Operators"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-operators" },
      h("h2", { id: "h-operators" }, "People with a key of their own"),
      table(
        [{ label: "Name" }, { label: "Role" }, { label: "Added", class: "wide-only" }, { label: "" }],
        items.map((operator) => [
          operator.name,
          operator.role,
          time(operator.createdAt),
          h(
            "div",
            { class: "row", "data-needs": "admin" },
            h(
              "button",
              { type: "button", class: "small quiet", "aria-label": `Change the role of ${operator.name}`, onclick: () => changeRole(operator) },
              "Role…",
            ),
            h(
              "button",
              { type: "button", class: "small quiet", "aria-label": `Issue a new key for ${operator.name}`, onclick: (e) => rotate(e.currentTarget, operator) },
              "New key…",
            ),
            h(
              "button",
              { type: "button", class: "small danger", "aria-label": `Remove ${operator.name}`, onclick: (e) => remove(e.currentTarget, operator) },
              "Remove…",
            ),
          ),
        ]),
        { empty: "No operator yet: the admin key is the only one. An admin can add people." },
      ),
      h(
        "p",
        { class: "small muted" },
        "An operator's key is shown once, when they are added or get a new one. The admin key always stays an admin; what each person does is in the Audit log.",
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-new-operator", "data-needs": "admin" }, h("h2", { id: "h-new-operator" }, "Add an operator"), form),
  );
}
