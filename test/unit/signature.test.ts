import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authorization, parseAuthorization, sign, signatureMatches, timestampInWindow } from '../../ingress/signature.ts';

describe('merchant signature (API.md)', () => {
  it('signs METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n with HMAC-SHA256', () => {
    const expected = createHmac('sha256', 'sk_test').update('POST\n/v1/payments?x=1\n1764300000\n5K8264ILTKCH16CQ\n{"a":1}\n').digest('hex');
    expect(sign('sk_test', 'POST', '/v1/payments?x=1', '1764300000', '5K8264ILTKCH16CQ', '{"a":1}')).toBe(expected);
  });

  it('round-trips its own header', () => {
    const h = authorization('m_1', 'sk', 'GET', '/v1/payments/p', '', { timestamp: 1764300000, nonce: '5K8264ILTKCH16CQ' });
    const p = parseAuthorization(h);
    expect(p).toMatchObject({ merchant_id: 'm_1', timestamp: '1764300000', nonce: '5K8264ILTKCH16CQ' });
    expect(signatureMatches(sign('sk', 'GET', '/v1/payments/p', '1764300000', '5K8264ILTKCH16CQ', ''), p?.signature ?? '')).toBe(true);
  });

  it.each([
    ['another scheme', 'Bearer x'],
    ['a short nonce', 'PEAKPAY-HMAC-SHA256 merchant_id="m",timestamp="1",nonce="short",signature="' + 'a'.repeat(64) + '"'],
    ['a missing field', 'PEAKPAY-HMAC-SHA256 merchant_id="m",timestamp="1",nonce="5K8264ILTKCH16CQ"'],
    ['a repeated field', 'PEAKPAY-HMAC-SHA256 merchant_id="m",merchant_id="n",nonce="5K8264ILTKCH16CQ",signature="' + 'a'.repeat(64) + '"'],
    ['an unsafe merchant id', 'PEAKPAY-HMAC-SHA256 merchant_id="m.*",timestamp="1",nonce="5K8264ILTKCH16CQ",signature="' + 'a'.repeat(64) + '"'],
    ['upper-case hex', 'PEAKPAY-HMAC-SHA256 merchant_id="m",timestamp="1",nonce="5K8264ILTKCH16CQ",signature="' + 'A'.repeat(64) + '"'],
  ])('rejects %s', (_name, header) => {
    expect(parseAuthorization(header)).toBeNull();
  });

  it('accepts timestamps within ±300 s only', () => {
    const now = 1_764_300_000_000;
    expect(timestampInWindow('1764300300', now)).toBe(true);
    expect(timestampInWindow('1764299700', now)).toBe(true);
    expect(timestampInWindow('1764300301', now)).toBe(false);
    expect(timestampInWindow('1764299699', now)).toBe(false);
  });

  it('compares signatures of different lengths as unequal without throwing', () => {
    expect(signatureMatches('aa'.repeat(32), 'aa')).toBe(false);
  });
});
