// One webhook POST. node:http(s) rather than fetch, for two reasons: the address check runs in the
// socket's own DNS lookup, so a name cannot resolve to a public address for the check and to a
// private one for the connection (DNS rebinding); and redirects are never followed (a 3xx is a
// failed attempt), so a public URL cannot bounce the request to an internal one.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/** Addresses a notify_url may not reach unless PEAKPAY_WEBHOOK_ALLOW_PRIVATE=true. */
function privateRanges(): BlockList {
  const b = new BlockList();
  for (const [net, bits] of [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ] as const) b.addSubnet(net, bits, 'ipv4');
  for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) {
    b.addSubnet(net, bits, 'ipv6');
  }
  return b;
}
const PRIVATE = privateRanges();

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  if (family !== 6) throw new Error(`assertion: not an IP address: ${address}`);
  // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) reaches the IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1] as string, 'ipv4');
  return PRIVATE.check(address, 'ipv6');
}

export class WebhookAddressError extends Error {
  override name = 'WebhookAddressError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isWebhookAddressError = (err: unknown): err is WebhookAddressError => err instanceof WebhookAddressError;

/** dns.lookup that refuses private addresses: every address a name resolves to must be public. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const blocked = addresses.find((a) => isPrivateAddress(a.address));
    if (blocked || addresses.length === 0) {
      return callback(new WebhookAddressError(`${hostname} resolves to a private address`) as NodeJS.ErrnoException, '', 0);
    }
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    const first = addresses[0] as LookupAddress;
    return callback(null, first.address, first.family);
  });
};

export type PostResult =
  | { ok: true; status: number }
  | { ok: false; status: number | null; error: string };

/** Keep-alive agents shared by the deliverer's POSTs, sized to its concurrency. */
export function webhookAgents(socketsMax: number) {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: socketsMax }),
    https: new https.Agent({ keepAlive: true, maxSockets: socketsMax }),
    destroy() {
      this.http.destroy();
      this.https.destroy();
    },
  };
}
export type WebhookAgents = ReturnType<typeof webhookAgents>;

/**
 * POSTs `body` to `url`; any 2xx is success. Never throws: a refused address, a network error, a
 * timeout or a non-2xx status is a failed attempt with a short reason for the operator.
 */
export async function postWebhook(opts: {
  url: string; body: string; headers: Record<string, string>; timeoutMs: number; allowPrivate: boolean; agents: WebhookAgents;
}): Promise<PostResult> {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    return { ok: false, status: null, error: 'invalid_url' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, status: null, error: 'unsupported_scheme' };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // An IP literal never reaches the lookup function, so it is checked here.
  if (!opts.allowPrivate && isIP(host) !== 0 && isPrivateAddress(host)) return { ok: false, status: null, error: 'address_blocked' };
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve) => {
    const req = transport.request(url, {
      method: 'POST',
      agent: url.protocol === 'https:' ? opts.agents.https : opts.agents.http,
      headers: { ...opts.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(opts.body)) },
      signal: AbortSignal.timeout(opts.timeoutMs),
      ...(!opts.allowPrivate && { lookup: publicOnlyLookup }),
    }, (res) => {
      const status = res.statusCode ?? 0;
      // The answer's body means nothing to us; read it away so the socket can be reused.
      res.resume();
      res.on('error', () => undefined);
      resolve(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, error: `http_${status}` });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const blocked = err instanceof WebhookAddressError || err.cause instanceof WebhookAddressError;
      const error = blocked ? 'address_blocked'
        : err.name === 'AbortError' || err.name === 'TimeoutError' ? 'timeout'
          : (err.code ?? err.name).slice(0, 60);
      resolve({ ok: false, status: null, error });
    });
    req.end(opts.body);
  });
}
