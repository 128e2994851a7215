// WeChat Pay API v3 signing, shared by the adapter, the callback verification and the sandbox:
// the signed messages, the Authorization header, and the AEAD_AES_256_GCM resource cipher.
// RSA itself goes through ChannelCrypto (the engine's worker pool); AES-GCM is cheap and inline.
import { createCipheriv, createDecipheriv, randomInt } from 'node:crypto';
import { WX_AUTH_SCHEMA } from './wire.ts';

const NONCE_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const GCM_TAG_BYTES = 16;
/** The APIv3 key is a 32-character string, used as the AES-256 key bytes as they are. */
export const WX_APIV3_KEY_BYTES = 32;

export function wxNonce(length = 32): string {
  let s = '';
  for (let i = 0; i < length; i++) s += NONCE_ALPHABET[randomInt(NONCE_ALPHABET.length)];
  return s;
}

/** What the merchant signs: METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n (URL = path and query as sent). */
export function requestMessage(method: string, pathWithQuery: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/** What WeChat signs on answers and callbacks: TIMESTAMP\nNONCE\nBODY\n. */
export function responseMessage(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`;
}

export type WxAuthorization = { mchid: string; nonce_str: string; signature: string; timestamp: string; serial_no: string };

export function authorizationHeader(a: WxAuthorization): string {
  return `${WX_AUTH_SCHEMA} mchid="${a.mchid}",nonce_str="${a.nonce_str}",signature="${a.signature}",timestamp="${a.timestamp}",serial_no="${a.serial_no}"`;
}

/** Parses the Authorization header in any order of its pairs (SDKs differ); null if it is not one. */
export function parseAuthorization(header: string | undefined): WxAuthorization | null {
  if (!header || !header.startsWith(`${WX_AUTH_SCHEMA} `)) return null;
  const pairs = new Map<string, string>();
  for (const part of header.slice(WX_AUTH_SCHEMA.length + 1).split(',')) {
    const m = /^\s*([a-z_]+)="([^"]*)"\s*$/.exec(part);
    if (!m || pairs.has(m[1]!)) return null;
    pairs.set(m[1]!, m[2]!);
  }
  const get = (k: string) => pairs.get(k);
  const [mchid, nonce_str, signature, timestamp, serial_no] = [get('mchid'), get('nonce_str'), get('signature'), get('timestamp'), get('serial_no')];
  if (!mchid || !nonce_str || !signature || !timestamp || !serial_no) return null;
  return { mchid, nonce_str, signature, timestamp, serial_no };
}

function keyBytes(apiV3Key: string): Buffer {
  const key = Buffer.from(apiV3Key, 'utf8');
  if (key.length !== WX_APIV3_KEY_BYTES) throw new Error('assertion: the APIv3 key must be 32 bytes');
  return key;
}

/** AEAD_AES_256_GCM as WeChat specifies: key = APIv3 key bytes, IV = nonce bytes, AAD = associated_data, base64(ciphertext ‖ tag). */
export function aesGcmEncrypt(plaintext: string, apiV3Key: string, nonce: string, associatedData: string): string {
  const cipher = createCipheriv('aes-256-gcm', keyBytes(apiV3Key), Buffer.from(nonce, 'utf8'));
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  return Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

/** Decrypts and authenticates; throws on a wrong key, nonce, AAD or any altered byte. */
export function aesGcmDecrypt(ciphertextB64: string, apiV3Key: string, nonce: string, associatedData: string): string {
  const buf = Buffer.from(ciphertextB64, 'base64');
  if (buf.length <= GCM_TAG_BYTES) throw new Error('ciphertext too short');
  const decipher = createDecipheriv('aes-256-gcm', keyBytes(apiV3Key), Buffer.from(nonce, 'utf8'), { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  decipher.setAuthTag(buf.subarray(buf.length - GCM_TAG_BYTES));
  return Buffer.concat([decipher.update(buf.subarray(0, buf.length - GCM_TAG_BYTES)), decipher.final()]).toString('utf8');
}
