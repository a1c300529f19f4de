// Small DOM helpers. Everything shown is set as text, never parsed as HTML: payloads,
// error texts and names come from outside and must not become markup.

/**
 * h("a", { href: "#/x", class: "c", onclick: fn }, "text", child, [children]) → element.
 * Attributes that are functions become listeners; false/null/undefined attributes and children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** 2024-05-01 13:04:05, in the viewer's time zone. */
export function formatTime(iso, { ms = false } = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** A <time> element with the exact instant in its datetime attribute. */
export function time(iso, options) {
  return iso ? h("time", { datetime: iso, title: iso }, formatTime(iso, options)) : "—";
}

/** 42 s, 5 min, 3 h 10 min, 2 d 4 h */
export function formatAge(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** 12,345, or "100,000+" when a count reached its cap. */
export function formatCount(n, cap) {
  const text = (n ?? 0).toLocaleString("en-US");
  return cap !== undefined && n >= cap ? `${text}+` : text;
}

export function badge(state, label = state) {
  return h("span", { class: `badge ${state}` }, label.replace("_", " "));
}

/** Shows a short message in the live region (read out by screen readers). */
export function notify(text, { error = false } = {}) {
  notify.at = Date.now();
  const box = document.getElementById("notice");
  clear(box).append(h("p", { class: error ? "error" : "" }, text));
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => clear(box), error ? 10_000 : 5_000);
}

/** On a new page, an old message goes; one just given (by the action that led here) stays. */
export function clearStaleNotice() {
  if (Date.now() - (notify.at ?? 0) > 1500) clear(document.getElementById("notice"));
}

/**
 * Opens the modal dialog with a title, a body and buttons; resolves with the value of the
 * button pressed, or null when dismissed (Escape). Focus goes to the first control and
 * comes back to where it was.
 */
export function openDialog({ title, body, buttons }) {
  const dialog = document.getElementById("dialog");
  const opener = document.activeElement;
  clear(dialog);
  return new Promise((resolve) => {
    let result = null;
    const actions = buttons.map((b) =>
      h(
        "button",
        {
          type: "button",
          class: b.class ?? "",
          onclick: () => {
            result = b.value;
            dialog.close();
          },
        },
        b.label,
      ),
    );
    dialog.append(h("h2", { id: "dialog-title" }, title), ...[body].flat(), h("div", { class: "actions" }, actions));
    dialog.addEventListener(
      "close",
      () => {
        if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
        resolve(result);
      },
      { once: true },
    );
    dialog.showModal();
  });
}

/** Asks before doing something that cannot be undone. */
export async function confirmAction(title, text, confirmLabel, { danger = false } = {}) {
  const value = await openDialog({
    title,
    body: h("p", {}, text),
    buttons: [
      { label: "Cancel", value: false, class: "quiet" },
      { label: confirmLabel, value: true, class: danger ? "danger solid" : "" },
    ],
  });
  return value === true;
}

/** Shows secrets that the service returns once. */
export async function showSecrets(title, entries) {
  await openDialog({
    title,
    body: [
      h("p", { class: "callout" }, "Copy it now: it is shown this once and cannot be read again."),
      ...entries.map(([label, value]) =>
        h("label", {}, label, h("input", { type: "text", readonly: true, value, class: "secret", "aria-label": label, onfocus: (e) => e.target.select() })),
      ),
    ],
    buttons: [{ label: "I have copied it", value: true }],
  });
}

/** The values of a form's named fields, trimmed; empty ones left out. */
export function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text !== "") values[name] = text;
  }
  return values;
}

/** A table with a header row; rows are arrays of cells (a cell may be a node or text, or {value, class}). */
export function table(columns, rows, { empty = "Nothing here." } = {}) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  const cell = (tag, c, col) => {
    const cls = [col.class, c && typeof c === "object" && !(c instanceof Node) ? c.class : null].filter(Boolean).join(" ");
    const content = c && typeof c === "object" && !(c instanceof Node) && "value" in c ? c.value : c;
    return h(tag, { class: cls || null, scope: tag === "th" ? "col" : null }, content ?? "—");
  };
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((col) => cell("th", col.label, col)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {},
            r.map((c, i) => cell("td", c, columns[i])),
          ),
        ),
      ),
    ),
  );
}

/** Runs an operator's action: the button is disabled meanwhile, and a failure is shown, not lost. */
export async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (error) {
    if (error?.status !== 401) notify(error?.message ?? String(error), { error: true });
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A message's full id: `app/id` for an app's message (each app has its own ids), the bare id for the admin's own. */
export function fullId(m) {
  return m.app ? `${m.app}/${m.id}` : m.id;
}
