// Alipay (openapi gateway, RSA2): the adapter, its config, notification verification and the sandbox.
export { createAlipayAdapter, normalizePrivateKey, normalizePublicKey, type AlipayConfig, type AlipayDeps } from './adapter.ts';
export { alipayNotifyAnswer, verifyAlipayNotify } from './notify.ts';
export { startAlipaySandbox, alipaySandboxFee, type AlipaySandbox } from './sandbox.ts';
export { fenToYuan, yuanToFen, mapTradeStatus, signContent } from './transformers.ts';
export type * from './wire.ts';
