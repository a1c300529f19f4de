/**
 * Operators' roles, each including the one before: a viewer reads everything (every app's
 * messages included); an operator also acts on messages, alerts and re-send jobs by hand; an
 * admin also changes the configuration (apps, subscriptions, keys, operators).
 */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value);

/** Whether `role` may do what `needed` may. */
export const hasRole = (role: Role, needed: Role): boolean => ROLES.indexOf(role) >= ROLES.indexOf(needed);

/**
 * Who the caller is: the bootstrap admin key, a named operator, or an app (`readTopics`: topics
 * whose messages the app may read though another app sent them).
 */
export type Principal = { kind: "admin" } | { kind: "operator"; name: string; role: Role } | { kind: "app"; app: string; readTopics: readonly string[] };

/** A person's role (the admin key is an admin); null for an app. */
export function roleOf(principal: Principal): Role | null {
  if (principal.kind === "admin") return "admin";
  return principal.kind === "operator" ? principal.role : null;
}

/** How a principal is named in answers and in the audit log. */
export function actorName(principal: Principal): string {
  if (principal.kind === "admin") return "admin key";
  return principal.kind === "operator" ? principal.name : principal.app;
}

/**
 * Who may call a route: `public` anyone; `app` an app key (its own data) or a person (a viewer
 * to read, an operator to change: people act across apps); `viewer`, `operator`, `admin` a
 * person with at least that role. Every route declares one.
 */
export type Access = "public" | "app" | Role;
export const ACCESS_LEVELS: readonly Access[] = ["public", "app", ...ROLES];

/**
 * Whether `principal` may call a route of `access` with `method`: null when it may, else the
 * role it would need (an app on a people's route needs that route's role).
 */
export function roleNeeded(access: Exclude<Access, "public">, method: string, principal: Principal): Role | null {
  const role = roleOf(principal);
  if (access === "app") {
    if (role === null) return null;
    const needed: Role = method === "GET" || method === "HEAD" ? "viewer" : "operator";
    return hasRole(role, needed) ? null : needed;
  }
  return role !== null && hasRole(role, access) ? null : access;
}
