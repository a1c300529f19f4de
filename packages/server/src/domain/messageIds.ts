/**
 * An app's message ids are its own. Inside the service (and to receivers, as `webhook-id`) a
 * message is known by its *full id*: `<app>/<id>` for an app's message, the bare id for one the
 * admin sent. App names and producer ids never contain "/" (their patterns forbid it), so the
 * first "/" splits a full id unambiguously.
 */
export const fullId = (app: string | null, id: string): string => (app === null ? id : `${app}/${id}`);

/** The id as its producer knows it: the part after the app. */
export function localId(full: string): string {
  const slash = full.indexOf("/");
  return slash < 0 ? full : full.slice(slash + 1);
}

/**
 * The full id a caller means by `ref` (a path parameter): a full id as given (`<app>/<id>`), or
 * a bare id in the caller's own namespace (an app's, or the admin's own messages).
 */
export const refToFullId = (callerApp: string | null, ref: string): string => (ref.includes("/") ? ref : fullId(callerApp, ref));
