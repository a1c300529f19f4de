/**
 * Waits until `check` returns a truthy value, looking every `intervalMs`, and returns that value;
 * fails after `timeoutMs` naming `what` (and the last error `check` threw, if any). The deadline
 * only bounds a failing test: a passing one goes on as soon as the condition holds, so it is
 * generous for a loaded machine.
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Resolves after `ms` if `check` held all along (looked at every `intervalMs`); fails as soon as
 * it does not. Only for showing that something does NOT happen (no fourth delivery, no second
 * attempt): nothing signals an absence, so a quiet period in which the thing would have
 * happened, were it going to, is the only evidence there is. Make `ms` a few times the interval
 * at which it would recur, and wait for everything that does happen with `waitFor` first.
 */
export async function stillAfter(what: string, check: () => boolean | Promise<boolean>, ms: number, intervalMs = 20): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (!(await check())) throw new Error(`${what} no longer held ${ms - Math.max(0, end - Date.now())} ms into a ${ms} ms quiet period`);
    if (Date.now() >= end) return;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, end - Date.now()))));
  }
}
