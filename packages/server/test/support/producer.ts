import { request, type Agent } from "undici";
import { ADMIN_KEY } from "@tidings/testkit/service";

/**
 * POSTs a message to `/v1/messages` until a service acknowledges it (201, or 200 for one it
 * already had): a producer retrying with its idempotency key while service processes die.
 * `baseUrl(turn)` names the service to try on each turn (0, 1, …).
 */
export async function sendUntilAcknowledged(baseUrl: (turn: number) => string, message: unknown, agent: Agent): Promise<void> {
  const body = JSON.stringify(message);
  for (let turn = 0; ; turn++) {
    try {
      const res = await request(`${baseUrl(turn)}/v1/messages`, {
        method: "POST",
        dispatcher: agent,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
        body,
      });
      await res.body.dump();
      if (res.statusCode === 201 || res.statusCode === 200) return;
    } catch {
      // The service is down: try again shortly (on the next one), as a producer would.
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
