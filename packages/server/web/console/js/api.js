// The console's only way to the service: the public HTTP API under /v1, with the session
// cookie (sent by the browser, unreadable by scripts) and the CSRF token on every change.

let csrfToken = null;
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `the service answered ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.field = body?.error?.field;
  }
}

/** What to do when the service says the session is gone (expired, signed out elsewhere). */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

async function call(method, path, body, extraHeaders = {}) {
  const headers = { accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && path !== "/v1/session") {
      csrfToken = null;
      onSignedOut(error);
    }
    throw error;
  }
  return data;
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body = {}, headers = {}) => call("POST", path, body, headers),
  patch: (path, body) => call("PATCH", path, body),
  delete: (path) => call("DELETE", path),
};

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const enc = encodeURIComponent;

/**
 * Picks up the session the cookie stands for: who signed in (`{kind, name, role}`), or null when
 * there is none.
 */
export async function resumeSession() {
  try {
    const session = await call("GET", "/v1/session");
    csrfToken = session.csrfToken;
    return session.who;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) return null;
    throw error;
  }
}

/** Signs in with the admin key or an operator's key; resolves to who signed in. */
export async function signIn(key) {
  const session = await call("POST", "/v1/session", { key });
  csrfToken = session.csrfToken;
  return session.who;
}

export async function signOut() {
  try {
    await call("DELETE", "/v1/session");
  } finally {
    csrfToken = null;
  }
}
