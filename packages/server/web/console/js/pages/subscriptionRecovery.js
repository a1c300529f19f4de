import { api, enc } from "../api.js";
import { act, badge, confirmAction, h, notify } from "../dom.js";

/** How often a running recovery job's progress is read. */
const JOB_POLL_MS = 250;

/** A datetime-local value (the viewer's time zone) as an instant; null when empty or not a time. */
function instant(value) {
  if (!value) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at.toISOString();
}

/** yyyy-mm-ddThh:mm:ss in the viewer's time zone, as a datetime-local input shows it. */
function localValue(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 19);
}

function recoverProgress(job) {
  const pct = job.total === 0 ? 100 : Math.floor((job.done / job.total) * 100);
  return h(
    "div",
    { class: "progress", id: "recover-progress" },
    h("label", { for: "recover-bar" }, `Recovering ${job.subscription}`),
    h("progress", { id: "recover-bar", max: Math.max(job.total, 1), value: job.total === 0 ? 1 : job.done }, `${pct}%`),
    h(
      "p",
      { class: "small", id: "recover-status", role: "status" },
      `${job.done.toLocaleString("en-US")} of ${job.total.toLocaleString("en-US")} re-sent (${pct}%) · `,
      badge(job.state),
      job.error ? h("span", { class: "error-text" }, ` ${job.error}`) : null,
    ),
  );
}

/**
 * The subscription page's "Retry and recover" panel: its waiting retries due now, and its dead
 * and failed deliveries of a window of messages re-sent by a job whose progress bar follows it.
 * `changed` is called after either, to show the counts and jobs as they now are; `last`, the
 * subscription's latest recovery job, is shown (and followed while it runs).
 */
export function recoveryPanel(ctx, name, changed, last) {
  const path = `/v1/subscriptions/${enc(name)}`;
  const retryButton = h(
    "button",
    {
      type: "button",
      id: "retry-pending",
      onclick: async () => {
        const answer = await act(retryButton, () => api.post(`${path}/retry-pending`));
        if (!answer) return;
        notify(`${answer.retried} pending deliver${answer.retried === 1 ? "y" : "ies"} of ${name} due now.`);
        await changed().catch(() => {});
      },
    },
    "Retry pending now",
  );

  const since = h("input", {
    id: "recover-since",
    name: "since",
    type: "datetime-local",
    step: 1,
    required: true,
    value: localValue(new Date(Date.now() - 86_400_000)),
  });
  const until = h("input", { id: "recover-until", name: "until", type: "datetime-local", step: 1 });
  const recoverButton = h("button", { type: "submit", id: "recover" }, "Recover…");
  const progress = h("div", { "aria-live": "polite" });
  let polling = null;
  ctx.onLeave(() => clearTimeout(polling));

  /** Shows the job and, while it runs, reads its progress again; announces the end it saw happen. */
  async function follow(job, watched = true) {
    clearTimeout(polling);
    progress.replaceChildren(recoverProgress(job));
    recoverButton.disabled = job.state === "running";
    if (job.state === "running") {
      polling = setTimeout(async () => {
        try {
          const next = await api.get(`/v1/jobs/${enc(job.id)}`);
          if (ctx.current()) await follow(next);
        } catch (error) {
          if (ctx.current()) notify(`Lost track of the job: ${error.message}`, { error: true });
        }
      }, JOB_POLL_MS);
      return;
    }
    if (!watched) return;
    if (job.state === "succeeded") notify(`Recovered ${job.done} deliver${job.done === 1 ? "y" : "ies"} of ${name}.`);
    await changed().catch(() => {});
  }

  const form = h(
    "form",
    {
      id: "recover-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const from = instant(since.value);
        const to = instant(until.value);
        if (!from) return notify("Since: give a date and time.", { error: true });
        if (until.value && (!to || to <= from)) return notify("Until must be later than since.", { error: true });
        const window = to ? `between ${from} and ${to}` : `since ${from}`;
        if (
          !(await confirmAction(
            "Recover dead and failed deliveries?",
            `The dead and failed deliveries of ${name}'s messages created ${window} are sent again, each on a fresh retry cycle.`,
            "Recover",
          ))
        )
          return;
        // Answered at once (Prefer: wait=0): the page follows the job itself.
        const job = await act(recoverButton, () => api.post(`${path}/recover`, to ? { since: from, until: to } : { since: from }, { prefer: "wait=0" }));
        if (job) await follow(job);
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h("label", { for: "recover-since" }, "Since", since, h("span", { class: "hint" }, "messages created from (your time zone)")),
      h("label", { for: "recover-until" }, "Until", until, h("span", { class: "hint" }, "… and before (empty: now)")),
    ),
    recoverButton,
  );

  if (last) void follow(last, last.state === "running");
  return h(
    "section",
    { class: "panel", "aria-labelledby": "h-recover", "data-needs": "operator" },
    h("h2", { id: "h-recover" }, "Retry and recover"),
    h("p", { class: "small muted" }, "After an outage: send the waiting retries now, or re-send what died or failed in a window."),
    h("div", { class: "row bar" }, retryButton),
    form,
    progress,
  );
}
