import { BlockList, isIP } from "node:net";

/**
 * Which addresses the service may connect to for deliveries, check-backs and brokers. Judged on
 * the address actually connected to (after name resolution), not on the URL's spelling.
 */
export interface EndpointPolicy {
  /** CIDRs endpoint addresses must fall in; empty: any address not refused. */
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

/**
 * Refused unless TIDINGS_ENDPOINT_ALLOW names them (an entry inside one of these ranges):
 * link-local ranges, where cloud metadata services and container credential endpoints live
 * (169.254.169.254, 169.254.170.2 for ECS tasks), and the metadata addresses outside them.
 */
export const BUILT_IN_REFUSED = [
  "169.254.0.0/16", // IPv4 link-local: AWS/GCP/Azure/OpenStack metadata, ECS task credentials
  "fe80::/10", // IPv6 link-local
  "100.100.100.200/32", // Alibaba Cloud metadata
  "192.0.0.192/32", // Oracle Cloud metadata
  "fd00:ec2::254/128", // AWS metadata over IPv6
  "fd00:ec2::23/128", // AWS DNS and time over IPv6
  "fd20:ce::254/128", // GCP metadata over IPv6
];

/** Names of metadata services, refused as spelled (they resolve into the ranges above anyway). */
export const METADATA_HOSTS = new Set(["metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"]);

function cidrParts(cidr: string): { address: string; bits: number; type: "ipv4" | "ipv6" } {
  const [address = "", bits] = cidr.split("/");
  const type = isIP(address) === 6 ? "ipv6" : "ipv4";
  return { address, bits: bits === undefined ? (type === "ipv6" ? 128 : 32) : Number(bits), type };
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const { address, bits, type } = cidrParts(cidr);
    list.addSubnet(address, bits, type);
  }
  return list;
}

/** Parses a comma list of CIDRs from configuration; throws naming the bad entry. */
export function parseCidrs(text: string | undefined, name: string): string[] {
  if (!text) return [];
  return text
    .split(",")
    .map((raw) => raw.trim())
    .filter((cidr) => cidr !== "")
    .map((cidr) => {
      const [address, bits] = cidr.split("/");
      const family = isIP(address ?? "");
      const max = family === 6 ? 128 : 32;
      if (family === 0 || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) {
        throw new Error(`${name}: "${cidr}" is not an IP address or CIDR range`);
      }
      return cidr;
    });
}

/** The eight 16-bit groups of an IPv6 address (any spelling, with or without a trailing IPv4). */
function hextets(address: string): number[] | null {
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(Math.max(0, fill)).fill("0"), ...right].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/**
 * The address a connection to `address` really reaches, in the family it is judged in:
 * IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) IPv6 as the IPv4 address, and the
 * unspecified addresses (0.0.0.0/8, ::), which the kernel connects to the local host, as loopback.
 * Brackets and an IPv6 zone (%eth0) are dropped. null: not an IP address.
 */
export function effectiveAddress(raw: string): { address: string; type: "ipv4" | "ipv6" } | null {
  const text = raw.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(text);
  if (family === 4) return text.startsWith("0.") ? { address: "127.0.0.1", type: "ipv4" } : { address: text, type: "ipv4" };
  if (family !== 6) return null;
  const g = hextets(text);
  if (!g) return { address: text, type: "ipv6" };
  const zeros = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeros(8)) return { address: "::1", type: "ipv6" };
  const v4 = () => `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  if (zeros(5) && g[5] === 0xffff) return effectiveAddress(v4());
  if (zeros(6) && !(g[6] === 0 && g[7] === 1)) return effectiveAddress(v4());
  return { address: text, type: "ipv6" };
}

/** Decides on one address: null when it may be connected to, otherwise why not. */
export type AddressJudge = (address: string) => string | null;

/** An allow entry that lies inside a built-in refused range is the admin naming it: an exception. */
function namedExceptions(allow: readonly string[], builtIn: BlockList): string[] {
  return allow.filter((cidr) => {
    const { address, type } = cidrParts(cidr);
    return builtIn.check(address, type);
  });
}

export function compileNetworkPolicy(policy: EndpointPolicy): AddressJudge {
  const allow = blockList(policy.allow);
  const deny = blockList(policy.deny);
  const builtIn = blockList(BUILT_IN_REFUSED);
  const exceptions = blockList(namedExceptions(policy.allow, builtIn));
  const allowAll = policy.allow.length === 0;
  return (raw) => {
    const judged = effectiveAddress(raw);
    if (!judged) return `${raw} is not an IP address`;
    const { address, type } = judged;
    const shown = raw.replace(/^\[|\]$/g, "") === address ? address : `${raw} (${address})`;
    if (deny.check(address, type)) return `${shown} is in TIDINGS_ENDPOINT_DENY`;
    if (builtIn.check(address, type) && !exceptions.check(address, type)) {
      return `${shown} is a link-local or cloud metadata address (refused unless TIDINGS_ENDPOINT_ALLOW names it)`;
    }
    if (!allowAll && !allow.check(address, type)) return `${shown} is not in TIDINGS_ENDPOINT_ALLOW`;
    return null;
  };
}

/** A metadata service's name is refused as spelled unless the allow list names a metadata range. */
export function refusedHostName(host: string, policy: EndpointPolicy): string | null {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (!METADATA_HOSTS.has(name)) return null;
  const excepted = namedExceptions(policy.allow, blockList(BUILT_IN_REFUSED)).length > 0;
  return excepted ? null : `${host} is a cloud metadata address (refused unless TIDINGS_ENDPOINT_ALLOW names it)`;
}

/** The prefix of every refusal, so a delivery's last error names the policy. */
export const POLICY_REFUSAL = "refused by the endpoint network policy";
