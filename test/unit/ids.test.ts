import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crockford26, SAFE_ID } from '../../engine/protocol/ids.ts';
import { isCanonicalBase64 } from '../../engine/channels/crypto.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

describe('crockford26', () => {
  it('gives 26 upper-case letters and digits of the Crockford alphabet, a safe id, the same for the same digest', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
      const id = crockford26(sha(input));
      expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(SAFE_ID.test(`pay_${id}`)).toBe(true);
      expect(crockford26(sha(input))).toBe(id);
    }));
  });

  it('encodes the leading 130 bits exactly (known vector)', () => {
    // 0xff… → every 5-bit group is 31 → 'Z'; 0x00… → '0'; 0x84 0x21 … = 10000 10000 10000 … → '8' repeated.
    expect(crockford26(Buffer.alloc(32, 0xff))).toBe('Z'.repeat(26));
    expect(crockford26(Buffer.alloc(32, 0))).toBe('0'.repeat(26));
    expect(crockford26(Buffer.from('8421084210842108421084210842108421', 'hex'))).toBe('G'.repeat(26));
  });

  it('refuses a digest shorter than 130 bits', () => {
    expect(() => crockford26(Buffer.alloc(16))).toThrow(/too short/);
  });
});

describe('isCanonicalBase64 (channel signatures)', () => {
  it('accepts what Buffer encodes and refuses every one-byte change that decodes to the same bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (bytes, pos, bit) => {
      const s = Buffer.from(bytes).toString('base64');
      expect(isCanonicalBase64(s)).toBe(true);
      const b = Buffer.from(s, 'latin1');
      const at = pos % b.length;
      b[at] = (b[at] as number) ^ (1 << bit);
      const t = b.toString('latin1');
      // Either refused, or it decodes to other bytes (then the RSA check refuses it).
      if (isCanonicalBase64(t)) expect(Buffer.from(t, 'base64').equals(Buffer.from(bytes))).toBe(false);
    }));
  });

  it('refuses padding tricks, foreign characters and the empty string', () => {
    expect(isCanonicalBase64('QQ==')).toBe(true);
    for (const s of ['', 'QQ}=', 'QR==', 'QQ=', 'Q Q==', 'QQ==\n', 'QQ%3D%3D', '-_8=']) expect(isCanonicalBase64(s), s).toBe(false);
  });
});
