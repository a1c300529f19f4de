import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import type { LookupFunction } from "node:net";
import { buildConnector } from "undici";
import { effectiveAddress, POLICY_REFUSAL, type AddressJudge } from "../domain/networkPolicy.ts";

/** A connection the endpoint network policy refused; its message is the attempt's last error. */
export class NetworkPolicyError extends Error {
  readonly code = "ENDPOINT_POLICY";
  constructor(reason: string) {
    super(`${POLICY_REFUSAL}: ${reason}`);
  }
}

/**
 * Resolves `host` and keeps the addresses the policy allows. A literal address is judged as it
 * is. All resolved addresses refused: a NetworkPolicyError naming the first. The caller connects
 * to what this returns, so what was judged is what is connected to (no second resolution
 * in between for a name to change its answer).
 */
export async function resolveAllowed(host: string, judge: AddressJudge): Promise<LookupAddress[]> {
  const bare = host.replace(/^\[|\]$/g, "");
  const literal = effectiveAddress(bare);
  if (literal) {
    const refused = judge(bare);
    if (refused) throw new NetworkPolicyError(refused);
    return [{ address: bare, family: bare.includes(":") ? 6 : 4 }];
  }
  const all = await new Promise<LookupAddress[]>((resolve, reject) =>
    dnsLookup(bare, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))),
  );
  const allowed = all.filter((a) => judge(a.address) === null);
  if (allowed.length === 0) {
    const reason = all.length > 0 ? judge(all[0]!.address)! : `${bare} has no address`;
    throw new NetworkPolicyError(all.length > 0 && all[0]!.address !== bare ? `${bare} resolves to ${reason}` : reason);
  }
  return allowed;
}

/** A `lookup` for net/tls.connect that answers only addresses the policy allows. */
export function policyLookup(judge: AddressJudge): LookupFunction {
  return ((hostname: string, options: { all?: boolean; family?: number }, callback: (...args: unknown[]) => void) => {
    resolveAllowed(hostname, judge).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : 0;
        const fit = family ? addresses.filter((a) => a.family === family) : addresses;
        if (fit.length === 0) return callback(Object.assign(new Error(`${hostname} has no IPv${family} address allowed`), { code: "ENOTFOUND" }));
        if (options.all) callback(null, fit);
        else callback(null, fit[0]!.address, fit[0]!.family);
      },
      (error: unknown) => callback(error),
    );
  }) as LookupFunction;
}

/**
 * An undici connector that applies the policy to the address it connects to: literal
 * addresses are judged before connecting, names through policyLookup.
 */
export function guardedConnector(judge: AddressJudge, timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs, lookup: policyLookup(judge) } as buildConnector.BuildOptions);
  return (options, callback) => {
    const host = options.hostname.replace(/^\[|\]$/g, "");
    if (effectiveAddress(host)) {
      const refused = judge(host);
      if (refused) {
        queueMicrotask(() => callback(new NetworkPolicyError(refused), null));
        return;
      }
    }
    connect(options, callback);
  };
}

/**
 * A broker URL with its host replaced by an address the policy allows (resolved now), for
 * clients that resolve names themselves: they connect to the address that was judged. `host`
 * is the original name, for TLS server name checks.
 */
export async function checkedBrokerUrl(text: string, judge: AddressJudge): Promise<{ url: string; host: string }> {
  const url = new URL(text);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const [first] = await resolveAllowed(host, judge);
  url.hostname = first!.family === 6 ? `[${first!.address}]` : first!.address;
  return { url: url.toString(), host };
}
