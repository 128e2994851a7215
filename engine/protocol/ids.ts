// Identifiers. Every id that becomes part of a NATS subject or a Redis key is restricted to
// [A-Za-z0-9_-] so it can never inject a '.', '*', '>', '{' or ':' into either.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ulid } from 'ulid';

export const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const safeIdSchema = z.string().regex(SAFE_ID, 'must be 1-64 of [A-Za-z0-9_-]');
export const merchantIdSchema = safeIdSchema;

export const newPaymentId = () => `pay_${ulid()}`;
export const newRefundId = () => `re_${ulid()}`;
export const newCommandId = () => `cmd_${ulid()}`;
export const newMerchantId = () => `m_${ulid().toLowerCase()}`;
export const newRequestId = () => `req_${ulid()}`;
export const newSecret = () => `sk_${randomBytes(24).toString('base64url')}`;
