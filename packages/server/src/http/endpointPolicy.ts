import { invalid } from "../domain/errors.ts";
import { compileNetworkPolicy, effectiveAddress, refusedHostName, type EndpointPolicy } from "../domain/networkPolicy.ts";

/**
 * Checks an endpoint URL an admin sets: http(s) only, no credentials, and a literal address or
 * metadata name the policy refuses is refused at once. Host names are judged again on every
 * connection, on the address they resolve to (transports/guardedConnect.ts).
 */
export function compileEndpointCheck(policy: EndpointPolicy): (url: string, field: string) => string {
  const judge = compileNetworkPolicy(policy);
  return (text, field) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw invalid(field, `"${text}" is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(field, "the URL must be http:// or https://");
    if (url.username || url.password) throw invalid(field, "put credentials in endpoint headers, not in the URL");
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const refused = effectiveAddress(host) ? judge(host) : refusedHostName(host, policy);
    if (refused) throw invalid(field, `${field} is refused by the endpoint network policy: ${refused}`);
    return url.toString();
  };
}
