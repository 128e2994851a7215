// UnionPay 5.1.0 signing (signMethod 01), shared by the adapter, the notification check and the
// sandbox: signature = base64(SHA256withRSA(sha256hex("k1=v1&k2=v2…"))) over every field but
// `signature`, keys sorted, values as they are (not URL-encoded). Requests name the signing
// certificate by certId; answers and notifications carry UnionPay's certificate (signPubKeyCert),
// trusted only when it chains to the configured middle and root certificates.
import { createHash, X509Certificate } from 'node:crypto';
import type { ChannelCrypto } from '../types.ts';

/** Parsed signing certificates kept (UnionPay rotates its certificate every few years). */
const CERT_CACHE_MAX = 16;
export const UP_FIELDS_MAX = 200;

export function signingString(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((k) => k !== 'signature')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Adds `signature` to the params (which already carry certId and signMethod). */
export async function signParams(params: Record<string, string>, privateKeyPem: string, crypto: ChannelCrypto): Promise<Record<string, string>> {
  const signature = await crypto.rsaSign(privateKeyPem, sha256Hex(signingString(params)));
  return { ...params, signature };
}

export function encodeForm(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

/** A form post (notifications, requests at the sandbox); null when a key repeats or there are too many. */
export function parseForm(raw: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of new URLSearchParams(raw)) {
    if (Object.hasOwn(out, k) || ++n > UP_FIELDS_MAX) return null;
    out[k] = v;
  }
  return out;
}

/**
 * A synchronous answer: k=v&k=v with raw values, as UnionPay's SDK parses it (a value may hold
 * `&` inside {…} or […]). null when it is not one.
 */
export function parseAnswer(text: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  let i = 0;
  let n = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq <= i) return null;
    const key = text.slice(i, eq);
    let j = eq + 1;
    let close: string | null = null;
    for (; j < text.length; j++) {
      const ch = text[j];
      if (close) {
        if (ch === close) close = null;
      } else if (ch === '{') close = '}';
      else if (ch === '[') close = ']';
      else if (ch === '&') break;
    }
    if (Object.hasOwn(out, key) || ++n > UP_FIELDS_MAX) return null;
    out[key] = text.slice(eq + 1, j);
    i = j + 1;
  }
  return out;
}

/** Writes an answer the way UnionPay does (raw values joined by &). */
export function formatAnswer(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** The CN of UnionPay's signing certificate: 041@<id>@<company>@<n>; the company is checked. */
function cnCompany(cert: X509Certificate): string | null {
  const cn = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return cn?.slice(3).split('@')[2] ?? null;
}

/**
 * Trusts a signPubKeyCert when it is issued by the middle certificate (itself issued by the root),
 * is within its validity, and names the expected company in its CN ("中国银联股份有限公司" in
 * production, "00040000:SIGN" in UnionPay's test environment), as UnionPay's SDKs check it.
 */
export class UpCertVerifier {
  private readonly root: X509Certificate;
  private readonly middle: X509Certificate;
  private readonly company: string;
  private readonly cache = new Map<string, { pem: string; fromMs: number; toMs: number } | null>();

  constructor(rootCertPem: string, middleCertPem: string, company: string) {
    this.root = new X509Certificate(rootCertPem);
    this.middle = new X509Certificate(middleCertPem);
    this.company = company;
    if (!this.middle.checkIssued(this.root) || !this.middle.verify(this.root.publicKey)) throw new Error('unionpay config: the middle certificate is not issued by the root');
  }

  /** The signing public key (SPKI PEM) of a trusted certificate, or null. */
  publicKeyOf(certPem: string, nowMs: number): string | null {
    let entry = this.cache.get(certPem);
    if (entry === undefined) {
      entry = this.inspect(certPem);
      if (this.cache.size >= CERT_CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(certPem, entry);
    }
    if (!entry || nowMs < entry.fromMs || nowMs > entry.toMs) return null;
    return entry.pem;
  }

  private inspect(certPem: string): { pem: string; fromMs: number; toMs: number } | null {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch {
      return null;
    }
    if (!cert.checkIssued(this.middle) || !cert.verify(this.middle.publicKey)) return null;
    if (cnCompany(cert) !== this.company) return null;
    return { pem: cert.publicKey.export({ type: 'spki', format: 'pem' }).toString(), fromMs: Date.parse(cert.validFrom), toMs: Date.parse(cert.validTo) };
  }
}

/** Verifies signed params (an answer or a notification) with the certificate they carry. */
export async function verifyParams(params: Record<string, string>, verifier: UpCertVerifier, crypto: ChannelCrypto, nowMs: number): Promise<boolean> {
  const { signature, signPubKeyCert } = params;
  if (!signature || !signPubKeyCert) return false;
  const key = verifier.publicKeyOf(signPubKeyCert, nowMs);
  if (!key) return false;
  return crypto.rsaVerify(key, sha256Hex(signingString(params)), signature);
}
