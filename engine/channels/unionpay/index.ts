// UnionPay 5.1.0 (网关支付 and 云闪付 QR): the adapter, its sandbox, and the pieces tests and tools use.
export { createUnionPayAdapter, UpTxnTimes, UP_TXN_TIMES_REMEMBERED_MAX, type UnionPayAdapter, type UnionPayConfig, type UnionPayDeps, type UnionPayRefundRequest } from './adapter.ts';
export { mintUnionPaySandboxPki, startUnionPaySandbox, unionPayFeeOf, upQueryIdOf, UP_SANDBOX_COMPANY, type UnionPaySandboxPki } from './sandbox.ts';
export { unionPayNotifyAnswer, verifyUnionPayNotify, UP_NOTIFY_TXN_AGE_MAX_MS_DEFAULT, type UpNotifyKeys } from './notify.ts';
export { encodeForm, formatAnswer, parseAnswer, parseForm, sha256Hex, signingString, signParams, UpCertVerifier, verifyParams } from './sign.ts';
export { crc32, readZip, writeZip } from './zip.ts';
export * from './transformers.ts';
export * from './wire.ts';
