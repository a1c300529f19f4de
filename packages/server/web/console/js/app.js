// The console's shell: a hash router (#/section/detail?query), the session, the navigation.
import { resumeSession, signOut, whenSignedOut } from "./api.js";
import { clear, clearStaleNotice, h, notify } from "./dom.js";
import { renderApps } from "./pages/apps.js";
import { renderChannels } from "./pages/channels.js";
import { renderAudit } from "./pages/audit.js";
import { renderOperators } from "./pages/operators.js";
import { renderReconciliation } from "./pages/reconciliation.js";
import { renderDeadLetters } from "./pages/deadLetters.js";
import { renderMessage } from "./pages/message.js";
import { renderMessages } from "./pages/messages.js";
import { renderOverview } from "./pages/overview.js";
import { renderSignIn } from "./pages/signIn.js";
import { renderSubscription } from "./pages/subscription.js";
import { renderSubscriptions } from "./pages/subscriptions.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
const whoView = document.getElementById("who");
let signedIn = false;
/** Timers and listeners of the page on screen, stopped when another page is shown. */
const cleanups = [];
let renderCount = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

export function navigate(hash) {
  if (location.hash === hash) void render();
  else location.hash = hash;
}

const ROUTES = {
  overview: (ctx) => renderOverview(ctx),
  messages: (ctx) => (ctx.parts[1] !== undefined ? renderMessage(ctx, ctx.parts[1]) : renderMessages(ctx)),
  "dead-letters": (ctx) => renderDeadLetters(ctx),
  subscriptions: (ctx) => (ctx.parts[1] !== undefined ? renderSubscription(ctx, ctx.parts[1]) : renderSubscriptions(ctx)),
  apps: (ctx) => renderApps(ctx),
  channels: (ctx) => renderChannels(ctx),
  audit: (ctx) => renderAudit(ctx),
  operators: (ctx) => renderOperators(ctx),
  reconciliation: (ctx) => renderReconciliation(ctx),
};

/**
 * `who`: the session's `{kind, name, role}`, or null when signed out. The role goes on the body:
 * the stylesheet hides what it may not do (elements marked `data-needs="operator"` or `"admin"`);
 * the API refuses it either way.
 */
function setSignedIn(who) {
  signedIn = who !== null;
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  whoView.hidden = !signedIn;
  if (who) {
    document.body.dataset.role = who.role;
    whoView.textContent = who.kind === "admin" ? "admin key" : `${who.name} · ${who.role}`;
  } else {
    delete document.body.dataset.role;
    whoView.textContent = "";
  }
}

async function render() {
  for (const fn of cleanups.splice(0)) fn();
  clearStaleNotice();
  const { parts, query } = parseHash();
  const section = parts[0] ?? "overview";
  const mine = ++renderCount;
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(main);
  if (!signedIn) {
    renderSignIn({ main, next: section === "sign-in" ? "#/overview" : location.hash || "#/overview", onSignedIn });
    document.title = "Sign in · Tidings";
    return;
  }
  const route = ROUTES[section];
  const ctx = {
    main,
    parts,
    query,
    navigate,
    /** The page is still the one on screen (an answer that comes late must not draw over another page). */
    current: () => mine === renderCount,
    onLeave: (fn) => cleanups.push(fn),
    title: (text) => {
      document.title = `${text} · Tidings`;
    },
  };
  if (!route) {
    main.append(h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/overview" }, "Go to the overview")));
    return;
  }
  try {
    await route(ctx);
  } catch (error) {
    if (!ctx.current() || error?.status === 401) return;
    clear(main).append(h("h1", {}, "Something went wrong"), h("p", { class: "error-text" }, error.message));
  }
}

function onSignedIn(next, who) {
  setSignedIn(who);
  navigate(next.startsWith("#/sign-in") ? "#/overview" : next);
}

/** Moves focus to the new page's heading so keyboard and screen-reader users start there. */
function focusHeading() {
  if (main.contains(document.activeElement) && document.activeElement !== main) return; // the page chose a field
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

whenSignedOut(() => {
  if (!signedIn) return;
  setSignedIn(null);
  void render().then(() => notify("Your session has expired or ended. Sign in again.", { error: true }));
});

signOutButton.addEventListener("click", async () => {
  try {
    await signOut();
  } catch {
    // Signed out already.
  }
  setSignedIn(null);
  navigate("#/sign-in");
  notify("Signed out.");
});

window.addEventListener("hashchange", () => void render().then(focusHeading));

(async () => {
  try {
    setSignedIn(await resumeSession());
  } catch (error) {
    clear(main).append(h("h1", {}, "The service cannot be reached"), h("p", { class: "error-text" }, String(error.message)));
    return;
  }
  await render();
})();
