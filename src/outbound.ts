// Where the server may send requests of its own (a tenant's before-commit hook; webhooks may use
// it too). A URL that names this machine, a private network or link-local metadata endpoints
// would let whoever configures it reach what only the server can (SSRF): refused unless the
// deployment says it is a dev setup (ALLOW_PRIVATE_URLS=true, which the local stack and the tests set).
//
// What can be checked without DNS (a Worker has no resolver API): literal IPv4/IPv6 addresses in
// the private, loopback, link-local, CGNAT, unspecified and multicast ranges, and names that are
// local by definition (localhost, *.localhost, *.local, *.internal, *.lan, *.home.arpa). A public
// name that resolves to a private address is not caught here; Cloudflare's network does not route
// a Worker's fetch to private addresses, which is the remaining line.

const PRIVATE_V4: Array<[number, number]> = [
  [0x00000000, 8], // 0.0.0.0/8
  [0x0a000000, 8], // 10/8
  [0x64400000, 10], // 100.64/10 (CGNAT)
  [0x7f000000, 8], // 127/8
  [0xa9fe0000, 16], // 169.254/16 (link-local, cloud metadata)
  [0xac100000, 12], // 172.16/12
  [0xc0000000, 24], // 192.0.0/24
  [0xc0a80000, 16], // 192.168/16
  [0xc6120000, 15], // 198.18/15 (benchmarking)
  [0xe0000000, 3], // 224/3 (multicast, reserved, broadcast)
];

const LOCAL_NAMES = /(^|\.)(localhost|local|internal|lan|home\.arpa)$/i;

const ipv4 = (host: string): number | undefined => {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
};

const privateV4 = (n: number): boolean => PRIVATE_V4.some(([base, bits]) => n >>> (32 - bits) === base >>> (32 - bits));

const privateV6 = (host: string): boolean => {
  const h = host.toLowerCase();
  if (h === "::" || h === "::1") return true;
  // IPv4-mapped (::ffff:10.0.0.1, or the URL parser's hex form ::ffff:a00:1).
  const mapped = /^::ffff:(.+)$/.exec(h)?.[1];
  if (mapped) {
    const v4 = ipv4(mapped);
    if (v4 !== undefined) return privateV4(v4);
    const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(mapped);
    if (hex?.[1] && hex[2]) return privateV4(((Number.parseInt(hex[1], 16) << 16) | Number.parseInt(hex[2], 16)) >>> 0);
    return true;
  }
  // fc00::/7 (unique local), fe80::/10 (link-local), ff00::/8 (multicast).
  return /^f[cd]/.test(h) || /^fe[89ab]/.test(h) || /^ff/.test(h);
};

/**
 * Does this host (a URL's `hostname`, IPv6 in brackets or not) name a loopback, private,
 * link-local or otherwise internal address? The one check for every outbound URL (the
 * before-commit hook here, webhook endpoints in src/hooks/config.ts).
 */
export const isPrivateHost = (hostname: string): boolean => {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  const v4 = ipv4(host);
  return (v4 !== undefined && privateV4(v4)) || (host.includes(":") && privateV6(host)) || LOCAL_NAMES.test(host);
};

/** Why `raw` may not be called from the server, or undefined when it may. */
export const outboundUrlProblem = (raw: string, allowPrivate: boolean): string | undefined => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "is not an absolute URL";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "must be http: or https:";
  if (url.username || url.password) return "must not carry credentials";
  if (allowPrivate) return undefined;
  if (url.protocol !== "https:") return "must be https: (http: only with ALLOW_PRIVATE_URLS=true, for local development)";
  if (isPrivateHost(url.hostname)) {
    return "points at a private, loopback or link-local address (allowed only with ALLOW_PRIVATE_URLS=true, for local development)";
  }
  return undefined;
};
