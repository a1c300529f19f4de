import { BlockList, isIP } from "node:net";
import { invalid } from "../domain/errors.ts";

/** Cloud metadata services: refused unless an admin allows them explicitly. */
const METADATA = ["169.254.169.254/32", "100.100.100.200/32", "fd00:ec2::254/128"];
const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata.goog", "metadata"]);

export interface EndpointPolicy {
  /** CIDRs endpoint addresses must fall in; empty: any address not denied. */
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split("/");
    const family = isIP(address ?? "") === 6 ? "ipv6" : "ipv4";
    list.addSubnet(address!, Number(bits ?? (family === "ipv6" ? 128 : 32)), family);
  }
  return list;
}

/** Parses a comma list of CIDRs from configuration; throws naming the bad entry. */
export function parseCidrs(text: string | undefined, name: string): string[] {
  if (!text) return [];
  return text.split(",").map((raw) => {
    const cidr = raw.trim();
    const [address, bits] = cidr.split("/");
    const family = isIP(address ?? "");
    const max = family === 6 ? 128 : 32;
    if (family === 0 || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) {
      throw new Error(`${name}: "${cidr}" is not an IP address or CIDR range`);
    }
    return cidr;
  });
}

/** Checks an endpoint URL an admin sets: http(s) only, and its literal address not refused. */
export function compileEndpointCheck(policy: EndpointPolicy): (url: string, field: string) => string {
  const allow = blockList(policy.allow);
  const deny = blockList([...policy.deny, ...METADATA.filter((m) => !policy.allow.includes(m))]);
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
    const family = isIP(host);
    if (family === 0) {
      if (METADATA_HOSTS.has(host.toLowerCase()) && policy.allow.length === 0) throw invalid(field, `${host} is a cloud metadata address and is refused`);
      return url.toString();
    }
    const type = family === 6 ? "ipv6" : "ipv4";
    if (deny.check(host, type)) throw invalid(field, `${host} is in a refused network`);
    if (policy.allow.length > 0 && !allow.check(host, type)) throw invalid(field, `${host} is not in an allowed network`);
    return url.toString();
  };
}
