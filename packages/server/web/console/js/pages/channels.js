import { api } from "../api.js";
import { act, badge, confirmAction, formValues, h, notify, showSecrets, table, time } from "../dom.js";

/** Where a channel sends, as a line: its URL (a Slack token masked) or its mail recipients. */
const targetOf = (c) => (c.type === "email" ? `${c.smtp.to.join(", ")} via ${c.smtp.host}:${c.smtp.port}` : c.url);

const list = (text) =>
  (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** A channel's state as a badge: stopped, failing (with its failures in a row), or sending. */
function stateBadge(c) {
  if (!c.enabled) return badge("disabled");
  if (c.state.failures > 0) return badge("failed", `failing (${c.state.failures})`);
  return badge("active", "ok");
}

/** The result of "send a test", in words. */
function testResult(name, r) {
  const code = r.statusCode === null ? "" : ` (${r.statusCode})`;
  return r.ok ? `Test of ${name} sent${code} in ${r.latencyMs} ms.` : `Test of ${name} failed${code} after ${r.latencyMs} ms: ${r.error}`;
}

/** Sends a test to a channel and shows what happened in `out` (and as a notice). */
async function sendTest(button, channel, out) {
  out.textContent = `Sending a test to ${channel.name}…`;
  out.className = "muted";
  const r = await act(button, () => api.post(`/v1/channels/${channel.id}/test`));
  if (!r) {
    out.textContent = "";
    return;
  }
  out.textContent = testResult(channel.name, r);
  out.className = r.ok ? "ok-text" : "error-text";
  notify(testResult(channel.name, r), { error: !r.ok });
}

/**
 * The form of a channel: its target by type (a URL, or SMTP settings), its filter and its rate
 * limit. `channel` given: an edit (the type stays; masked secrets sent back keep the stored ones).
 */
function channelForm(channel, onSubmit) {
  const type = channel?.type ?? "webhook";
  const typeSelect = h(
    "select",
    { name: "type", disabled: !!channel },
    ["webhook", "slack", "email"].map((t) =>
      h("option", { value: t, selected: t === type }, t === "slack" ? "Slack-compatible webhook" : t === "email" ? "email (SMTP)" : "webhook (signed)"),
    ),
  );
  const smtp = channel?.smtp;
  const urlField = h(
    "label",
    { class: "wide" },
    "URL",
    h("input", { name: "url", type: "text", value: channel?.url ?? "", autocomplete: "off", spellcheck: "false" }),
    h("span", { class: "hint" }, "a webhook receiver, or a Slack incoming webhook URL (its token is masked once saved)"),
  );
  const smtpFields = h(
    "div",
    { class: "form-grid wide" },
    h("label", {}, "SMTP host", h("input", { name: "smtpHost", value: smtp?.host ?? "", autocomplete: "off" })),
    h(
      "label",
      {},
      "Port",
      h("input", { name: "smtpPort", type: "number", min: 1, max: 65535, value: smtp?.port ?? "" }),
      h("span", { class: "hint" }, "587, or 465 with TLS"),
    ),
    h(
      "label",
      {},
      "TLS",
      h(
        "select",
        { name: "smtpTls" },
        ["starttls", "implicit", "none"].map((t) => h("option", { value: t, selected: t === (smtp?.tls ?? "starttls") }, t)),
      ),
    ),
    h("label", {}, "Username", h("input", { name: "smtpUsername", value: smtp?.username ?? "", autocomplete: "off" })),
    h(
      "label",
      {},
      "Password",
      h("input", { name: "smtpPassword", type: "password", value: smtp?.password ?? "", autocomplete: "new-password" }),
      h("span", { class: "hint" }, smtp?.password ? "*** keeps the saved one" : "optional"),
    ),
    h("label", {}, "From", h("input", { name: "smtpFrom", type: "email", value: smtp?.from ?? "", autocomplete: "off" })),
    h(
      "label",
      { class: "wide" },
      "To",
      h("input", { name: "smtpTo", value: smtp?.to?.join(", ") ?? "", autocomplete: "off" }),
      h("span", { class: "hint" }, "comma-separated addresses"),
    ),
  );
  const showFields = () => {
    const email = typeSelect.value === "email";
    urlField.hidden = email;
    smtpFields.hidden = !email;
  };
  typeSelect.addEventListener("change", showFields);
  showFields();
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const v = formValues(form);
        const body = {};
        if (!channel) {
          body.name = v.name;
          body.type = typeSelect.value;
        } else if (v.name !== channel.name) body.name = v.name;
        if (typeSelect.value === "email") {
          body.smtp = {
            host: v.smtpHost ?? "",
            ...(v.smtpPort ? { port: Number(v.smtpPort) } : {}),
            tls: v.smtpTls,
            username: v.smtpUsername ?? null,
            password: v.smtpPassword ?? null,
            from: v.smtpFrom ?? "",
            to: list(v.smtpTo),
          };
        } else body.url = v.url ?? "";
        body.filter = { conditions: list(v.conditions).length ? list(v.conditions) : null, events: list(v.events).length ? list(v.events) : null };
        if (v.perMinute) body.perMinute = Number(v.perMinute);
        await onSubmit(body, form.querySelector("button[type=submit]"));
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h(
        "label",
        {},
        "Name",
        h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}", value: channel?.name ?? "", autocomplete: "off" }),
        h("span", { class: "hint" }, "lower-case letters, digits, _ . -"),
      ),
      h("label", {}, "Type", typeSelect),
      urlField,
      smtpFields,
      h(
        "label",
        {},
        "Only conditions",
        h("input", { name: "conditions", value: channel?.filter.conditions?.join(", ") ?? "", autocomplete: "off" }),
        h("span", { class: "hint" }, "e.g. delivery_dead, circuit_open; empty: all"),
      ),
      h(
        "label",
        {},
        "Only events",
        h("input", { name: "events", value: channel?.filter.events?.join(", ") ?? "", autocomplete: "off" }),
        h("span", { class: "hint" }, "opened, acknowledged, resolved; empty: all"),
      ),
      h(
        "label",
        {},
        "Notifications per minute",
        h("input", { name: "perMinute", type: "number", min: 1, max: 600, value: channel?.perMinute ?? 6 }),
        h("span", { class: "hint" }, "at most; what waits meanwhile goes in one digest"),
      ),
    ),
    h("button", { type: "submit" }, channel ? "Save channel" : "Create channel"),
  );
  return form;
}

/** The notification channels: list with their state, create, edit, send a test, stop, delete. */
export async function renderChannels(ctx) {
  if (ctx.parts[1] !== undefined) return renderChannel(ctx, ctx.parts[1]);
  ctx.title("Channels");
  const { items } = await api.get("/v1/channels");
  if (!ctx.current()) return;
  const out = h("p", { role: "status", "aria-live": "polite", id: "test-result" });
  const form = channelForm(null, async (body, button) => {
    const created = await act(button, () => api.post("/v1/channels", body));
    if (!created) return;
    if (created.secret) await showSecrets(`Channel ${created.name} created`, [["Webhook signing secret", created.secret]]);
    else notify(`Channel ${created.name} created.`);
    ctx.navigate("#/channels");
  });
  ctx.main.append(
    h("h1", {}, "Channels"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-list" },
      h("h2", { id: "h-list" }, "Notification channels"),
      table(
        [
          { label: "Name" },
          { label: "Type" },
          { label: "Sends to", class: "wide-only" },
          { label: "State" },
          { label: "Waiting" },
          { label: "Last sent", class: "wide-only" },
          { label: "Last error" },
          { label: "" },
        ],
        items.map((c) => [
          h("a", { href: `#/channels/${c.id}` }, c.name),
          c.type,
          { value: targetOf(c), class: "id" },
          stateBadge(c),
          String(c.state.waiting),
          time(c.state.lastSentAt),
          c.state.lastError ? { value: c.state.lastError, class: "error-text" } : "—",
          h(
            "div",
            { class: "row" },
            h(
              "button",
              {
                type: "button",
                class: "small",
                "data-needs": "operator",
                "aria-label": `Send a test to ${c.name}`,
                onclick: (e) => sendTest(e.currentTarget, c, out),
              },
              "Send a test",
            ),
            h("a", { class: "button small quiet", href: `#/channels/${c.id}`, "data-needs": "admin", "aria-label": `Edit ${c.name}` }, "Edit"),
          ),
        ]),
        { empty: "No channel yet: an admin can add one, to be told about alerts." },
      ),
      out,
      h(
        "p",
        { class: "small muted" },
        "Each channel is told of every alert event its filter lets through: several waiting at once go as one digest, at most its limit a minute. A failing channel is retried on its own schedule; the others do not wait for it.",
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-new", "data-needs": "admin" }, h("h2", { id: "h-new" }, "New channel"), form),
  );
}

/** One channel: its state and last notifications, send a test, edit, stop or resume, delete. */
async function renderChannel(ctx, id) {
  const c = await api.get(`/v1/channels/${encodeURIComponent(id)}`);
  if (!ctx.current()) return;
  ctx.title(`Channel ${c.name}`);
  const out = h("p", { role: "status", "aria-live": "polite", id: "test-result" });
  const form = channelForm(c, async (body, button) => {
    const saved = await act(button, () => api.patch(`/v1/channels/${c.id}`, body));
    if (!saved) return;
    notify(`${saved.name} saved.`);
    ctx.navigate(`#/channels/${c.id}`);
  });
  const toggle = async (button) => {
    const saved = await act(button, () => api.patch(`/v1/channels/${c.id}`, { enabled: !c.enabled }));
    if (saved) {
      notify(saved.enabled ? `${c.name} resumed.` : `${c.name} stopped: events wait for it until it is resumed.`);
      ctx.navigate(`#/channels/${c.id}`);
    }
  };
  const rotate = async (button) => {
    if (!(await confirmAction(`New signing secret for ${c.name}?`, "The receiver must verify with the new secret from now on.", "Issue a new secret"))) return;
    const saved = await act(button, () => api.patch(`/v1/channels/${c.id}`, { rotateSecret: true }));
    if (saved) await showSecrets(`New signing secret of ${c.name}`, [["Webhook signing secret", saved.secret]]);
  };
  const remove = async (button) => {
    if (!(await confirmAction(`Delete ${c.name}?`, "It is told of no alert from now on.", "Delete channel", { danger: true }))) return;
    if (await act(button, () => api.delete(`/v1/channels/${c.id}`).then(() => true))) {
      notify(`${c.name} deleted.`);
      ctx.navigate("#/channels");
    }
  };
  ctx.main.append(
    h("p", {}, h("a", { href: "#/channels" }, "← Channels")),
    h("h1", {}, `Channel ${c.name}`),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-state" },
      h("h2", { id: "h-state" }, "State"),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Type"),
        h("dd", {}, c.type),
        h("dt", {}, "Sends to"),
        h("dd", { class: "id" }, targetOf(c)),
        h("dt", {}, "State"),
        h("dd", {}, stateBadge(c)),
        h("dt", {}, "Events waiting"),
        h("dd", {}, String(c.state.waiting)),
        h("dt", {}, "Notifications sent"),
        h("dd", {}, String(c.state.sent)),
        h("dt", {}, "Last sent"),
        h("dd", {}, time(c.state.lastSentAt)),
        h("dt", {}, "Last error"),
        h(
          "dd",
          { class: c.state.lastError ? "error-text" : null },
          c.state.lastError ?? "—",
          c.state.lastErrorAt ? [" (", time(c.state.lastErrorAt), ")"] : null,
        ),
        h("dt", {}, "Next try"),
        h("dd", {}, time(c.state.nextAttemptAt)),
      ),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", "data-needs": "operator", onclick: (e) => sendTest(e.currentTarget, c, out) }, "Send a test"),
        h("button", { type: "button", class: "quiet", "data-needs": "admin", onclick: (e) => toggle(e.currentTarget) }, c.enabled ? "Stop" : "Resume"),
        c.type === "webhook"
          ? h("button", { type: "button", class: "quiet", "data-needs": "admin", onclick: (e) => rotate(e.currentTarget) }, "New signing secret…")
          : null,
        h("button", { type: "button", class: "danger", "data-needs": "admin", onclick: (e) => remove(e.currentTarget) }, "Delete…"),
      ),
      out,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-recent" },
      h("h2", { id: "h-recent" }, "Last notifications"),
      table(
        [{ label: "At" }, { label: "Events" }, { label: "Outcome" }],
        (c.recent ?? []).map((n) => [time(n.at), String(n.events), n.ok ? badge("delivered", "sent") : { value: n.error ?? "failed", class: "error-text" }]),
        { empty: "None yet." },
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-edit", "data-needs": "admin" }, h("h2", { id: "h-edit" }, "Settings"), form),
  );
}
