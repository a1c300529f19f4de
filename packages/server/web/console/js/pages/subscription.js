import { api, ApiError, enc } from "../api.js";
import { act, badge, confirmAction, formatCount, formValues, h, notify, showSecrets, table, time } from "../dom.js";
import { subscriptionBody, subscriptionFields } from "./subscriptionForm.js";
import { recoveryPanel } from "./subscriptionRecovery.js";

/** How often a running re-send job's progress is read. */
const JOB_POLL_MS = 250;

/** Draws a job's progress: a real <progress> element that moves as batches commit. */
function progressView(job) {
  const pct = job.total === 0 ? 100 : Math.floor((job.done / job.total) * 100);
  return h(
    "div",
    { class: "progress", id: "resend-progress" },
    h("label", { for: "resend-bar" }, `Re-sending dead deliveries of ${job.subscription}`),
    h("progress", { id: "resend-bar", max: Math.max(job.total, 1), value: job.total === 0 ? 1 : job.done }, `${pct}%`),
    h(
      "p",
      { class: "small", id: "resend-status", role: "status" },
      `${job.done.toLocaleString("en-US")} of ${job.total.toLocaleString("en-US")} re-sent (${pct}%) in ${job.batches} batch${job.batches === 1 ? "" : "es"} of up to ${job.batchSize} · `,
      badge(job.state),
      job.error ? h("span", { class: "error-text" }, ` ${job.error}`) : null,
    ),
  );
}

/** One subscription: pause/resume, re-send its dead deliveries in batches, edit, rotate its secret, delete. */
export async function renderSubscription(ctx, name) {
  ctx.title(`Subscription ${name}`);
  const path = `/v1/subscriptions/${enc(name)}`;
  let sub;
  try {
    sub = await api.get(path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      ctx.main.append(h("h1", {}, "No such subscription"), h("p", {}, h("a", { href: "#/subscriptions" }, "All subscriptions")));
      return;
    }
    throw error;
  }
  const [stats, jobs] = await Promise.all([api.get("/v1/stats"), api.get(`/v1/jobs?subscription=${enc(name)}`)]);
  if (!ctx.current()) return;
  let counts = stats.subscriptions.find((s) => s.subscription === name)?.counts ?? {};
  const countsView = h("div", {});
  const jobsView = h("div", {});
  const drawCounts = () =>
    countsView.replaceChildren(
      h(
        "dl",
        { class: "stats" },
        ["pending", "delivered", "dead"].map((k) => h("div", {}, h("dt", {}, k), h("dd", {}, formatCount(counts[k], stats.countCap)))),
      ),
    );
  const drawJobs = (items) =>
    jobsView.replaceChildren(
      table(
        [{ label: "Started" }, { label: "State" }, { label: "Re-sent", class: "num" }, { label: "Batches", class: "num wide-only" }, { label: "Kind" }],
        items.map((j) => [time(j.createdAt), badge(j.state), `${j.done} / ${j.total}`, String(j.batches), j.kind === "recover" ? "recover" : "re-send dead"]),
        { empty: "None yet." },
      ),
    );
  /** After a job: the counts and the job list as they are now. */
  async function refresh() {
    const [fresh, recent] = await Promise.all([api.get("/v1/stats"), api.get(`/v1/jobs?subscription=${enc(name)}`)]);
    if (!ctx.current()) return;
    counts = fresh.subscriptions.find((s) => s.subscription === name)?.counts ?? {};
    drawCounts();
    drawJobs(recent.items);
  }
  drawCounts();
  drawJobs(jobs.items);
  let polling = null;
  ctx.onLeave(() => clearTimeout(polling));

  // ---- status and pause/resume
  const status = h("span", { id: "sub-status" }, sub.enabled ? badge("active") : badge("paused"));
  const toggle = h(
    "button",
    {
      type: "button",
      id: "toggle",
      "data-needs": "admin",
      onclick: async () => {
        const updated = await act(toggle, () => api.patch(path, { enabled: !sub.enabled }));
        if (!updated) return;
        sub = updated;
        status.replaceChildren(sub.enabled ? badge("active") : badge("paused"));
        toggle.textContent = sub.enabled ? "Pause" : "Resume";
        notify(sub.enabled ? `${name} resumed: its pending deliveries go out now.` : `${name} paused: deliveries wait until it is resumed.`);
      },
    },
    sub.enabled ? "Pause" : "Resume",
  );

  // ---- endpoint health: the circuit's state and its recent transitions
  const healthView = h("div", { id: "sub-health" }, ...healthParts(sub));

  // ---- re-send dead in batches, with progress
  const progress = h("div", { "aria-live": "polite" });
  const batchInput = h("input", { id: "batch-size", name: "batchSize", type: "number", min: 1, max: 10000, value: 500, required: true });
  const resendButton = h("button", { type: "submit", id: "resend-dead" }, "Re-send all dead…");
  /** Shows the job and, while it runs, reads its progress again; announces the end it saw happen. */
  async function follow(job, watched = false) {
    clearTimeout(polling);
    progress.replaceChildren(progressView(job));
    if (job.state === "running") {
      polling = setTimeout(async () => {
        try {
          const next = await api.get(`/v1/jobs/${enc(job.id)}`);
          if (ctx.current()) await follow(next, true);
        } catch (error) {
          if (ctx.current()) notify(`Lost track of the job: ${error.message}`, { error: true });
        }
      }, JOB_POLL_MS);
    } else {
      resendButton.disabled = false;
      if (watched) {
        if (job.state === "succeeded") notify(`Re-sent ${job.done} dead deliver${job.done === 1 ? "y" : "ies"} of ${name}.`);
        await refresh().catch(() => {});
      }
    }
  }
  const resendForm = h(
    "form",
    {
      id: "resend",
      onsubmit: async (event) => {
        event.preventDefault();
        const dead = counts.dead ?? 0;
        const ok = await confirmAction(
          "Re-send all dead deliveries?",
          `Every dead delivery of ${name} (${formatCount(dead, stats.countCap)} now) gets a fresh retry cycle, ${batchInput.value} at a time.`,
          "Re-send all",
        );
        if (!ok) return;
        const job = await act(resendButton, () => api.post(`${path}/resend-dead-jobs`, { batchSize: Number(batchInput.value) }));
        if (!job) return;
        resendButton.disabled = job.state === "running";
        await follow(job, true);
      },
    },
    h(
      "div",
      { class: "form-grid" },
      h("label", { for: "batch-size" }, "Batch size", batchInput, h("span", { class: "hint" }, "deliveries re-sent per transaction")),
    ),
    resendButton,
  );
  const resends = jobs.items.filter((j) => j.kind !== "recover");
  const running = resends.find((j) => j.state === "running");
  const lastJob = running ?? resends[0];

  // ---- edit, rotate, delete
  const editForm = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const updated = await act(editForm.querySelector("button[type=submit]"), () =>
          api.patch(path, subscriptionBody(formValues(editForm), { creating: false })),
        );
        if (updated) {
          notify(`${name} saved.`);
          ctx.navigate(`#/subscriptions/${enc(name)}`);
        }
      },
    },
    subscriptionFields(sub),
    h("button", { type: "submit" }, "Save changes"),
  );
  const rotate = async (event) => {
    const button = event.currentTarget;
    if (
      !(await confirmAction(
        "Rotate the signing secret?",
        `${name}'s endpoint must verify with the new secret from now on; the old one stops working at once.`,
        "Rotate secret",
      ))
    )
      return;
    const updated = await act(button, () => api.patch(path, { rotateSecret: true }));
    if (updated) await showSecrets(`New signing secret of ${name}`, [["Signing secret", updated.secret]]);
  };
  const remove = async (event) => {
    const button = event.currentTarget;
    if (
      !(await confirmAction(`Delete ${name}?`, "The subscription and all its deliveries (and their log) are deleted for good.", "Delete subscription", {
        danger: true,
      }))
    )
      return;
    const done = await act(button, () => api.delete(path).then(() => true));
    if (done) {
      notify(`${name} deleted.`);
      ctx.navigate("#/subscriptions");
    }
  };

  ctx.main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/subscriptions" }, "Subscriptions"), " / "),
    h("div", { class: "spread" }, h("h1", {}, "Subscription ", h("span", { class: "mono" }, name)), h("span", { class: "row" }, circuitBadge(sub), status)),
    h(
      "div",
      { class: "row bar" },
      toggle,
      h("a", { class: "button quiet", href: `#/dead-letters?subscription=${enc(name)}` }, "Dead letters"),
      h("a", { class: "button quiet", href: `#/messages?subscription=${enc(name)}` }, "Messages"),
    ),
    h(
      "div",
      { class: "grid" },
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-counts" },
        h("h2", { id: "h-counts" }, "Deliveries"),
        countsView,
        h("p", { class: "small muted" }, `${sub.topic} → ${sub.endpoint.url}`),
        h(
          "p",
          { class: "small", id: "sub-ordering" },
          sub.ordering === "key"
            ? `Ordered by key: one delivery of a key at a time, in order; a dead one ${sub.onDead === "block" ? "blocks its key (alert: key blocked) until re-sent, skipped or deleted" : "is skipped"}.`
            : "Not ordered: deliveries go out in any order.",
        ),
        h(
          "p",
          { class: "small", id: "sub-pending-age" },
          sub.pendingAgeAlert === false
            ? "No pending-age alert for this subscription."
            : sub.pendingAgeAlert === null
              ? "Alert (pending too old) when the oldest pending delivery has waited longer than the service's default."
              : `Alert (pending too old) when the oldest pending delivery has waited longer than ${sub.pendingAgeAlert}.`,
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "h-resend", "data-needs": "operator" },
        h("h2", { id: "h-resend" }, "Re-send dead deliveries"),
        resendForm,
        progress,
      ),
      recoveryPanel(
        ctx,
        name,
        refresh,
        jobs.items.find((j) => j.kind === "recover"),
      ),
    ),
    h("section", { class: "panel", "aria-labelledby": "h-health" }, h("h2", { id: "h-health" }, "Endpoint health"), healthView),
    h("section", { class: "panel", "aria-labelledby": "h-edit", "data-needs": "admin" }, h("h2", { id: "h-edit" }, "Settings"), editForm),
    h("section", { class: "panel", "aria-labelledby": "h-jobs" }, h("h2", { id: "h-jobs" }, "Recent re-send jobs"), jobsView),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-danger", "data-needs": "admin" },
      h("h2", { id: "h-danger" }, "Secret and removal"),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", class: "quiet", onclick: rotate }, "Rotate secret…"),
        h("button", { type: "button", class: "danger", onclick: remove }, "Delete subscription…"),
      ),
    ),
  );
  if (lastJob) {
    if (running) resendButton.disabled = true;
    await follow(lastJob);
  }
  if (ctx.query.get("focus") === "resend") batchInput.focus();
}

/** The circuit's state as a badge: closed (deliveries go), open (they wait), probing. */
function circuitBadge(sub) {
  if (!sub.circuit) return badge("enabled", "no circuit breaker");
  const state = sub.health?.state ?? "closed";
  if (state === "open") return h("span", { id: "circuit-badge" }, badge("dead", "circuit open"));
  if (state === "half_open") return h("span", { id: "circuit-badge" }, badge("pending", "probing"));
  return h("span", { id: "circuit-badge" }, badge("active", "circuit closed"));
}

const EVENT_BADGES = {
  opened: ["dead", "opened"],
  closed: ["delivered", "closed"],
  auto_paused: ["dead", "paused"],
  reset: ["delivered", "closed by hand"],
};

/** What opens the circuit, in words. */
function opensWhen(c) {
  const inARow = c.failures !== null ? `after ${c.failures} failed attempts in a row` : null;
  const ratio =
    c.failureRatio !== null
      ? `when ${Math.round(c.failureRatio * 1000) / 10}% or more of the attempts in ${c.window} fail (once there are ${c.minAttempts})`
      : null;
  return `Opens ${[inARow, ratio].filter(Boolean).join(" or ")}`;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A duration as the API spells it (90s, 5m) in milliseconds. */
const durationMs = (text) => {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text ?? "");
  return m ? Number(m[1]) * UNIT_MS[m[2]] : 0;
};

/** The policy in words, what holds the subscription now, and the timeline of its last transitions. */
function healthParts(sub) {
  const health = sub.health ?? { state: "closed", history: [] };
  const c = sub.circuit;
  const parts = [
    h(
      "p",
      { class: "small" },
      c
        ? `${opensWhen(c)}; while open, one probe every ${c.probeEvery}; ${c.pauseAfter ? `paused after ${c.pauseAfter} open.` : "never paused automatically."}`
        : "No circuit breaker: every delivery follows its retry schedule.",
    ),
  ];
  const w = health.window;
  if (c && c.failureRatio !== null && health.state === "closed" && w && Date.parse(w.startedAt) + durationMs(c.window) > Date.now()) {
    parts.push(h("p", { class: "small", id: "circuit-window" }, `This window: ${w.failures} of ${w.attempts} attempts failed, since `, time(w.startedAt), "."));
  }
  if (health.state !== "closed") {
    parts.push(
      h(
        "p",
        { class: "small" },
        "Open since ",
        time(health.openedAt),
        "; deliveries wait without spending attempts. Next probe ",
        time(health.nextProbeAt),
        ".",
      ),
    );
  }
  if (health.throttledUntil && new Date(health.throttledUntil) > new Date()) {
    parts.push(h("p", { class: "small" }, "The receiver asked to wait (429): nothing is sent before ", time(health.throttledUntil), "."));
  }
  parts.push(
    table(
      [{ label: "When" }, { label: "Circuit" }, { label: "Detail", class: "wide-only" }],
      health.history.map((e) => [time(e.at), badge(...(EVENT_BADGES[e.event] ?? ["pending", e.event])), e.detail]),
      { empty: "The circuit has not opened." },
    ),
  );
  return parts;
}
