// WeChat Pay API v3: the adapter, its sandbox, and the pieces tests and tools use.
export { createWechatPayAdapter, type WechatPayConfig, type WechatPayDeps } from './adapter.ts';
export { startWechatPaySandbox, wechatPayFeeOf } from './sandbox.ts';
export { verifyWechatPayNotify, wechatPayNotifyAnswer, type WxNotifyKeys } from './notify.ts';
export { aesGcmDecrypt, aesGcmEncrypt, authorizationHeader, parseAuthorization, requestMessage, responseMessage, wxNonce } from './sign.ts';
export * from './transformers.ts';
export * from './wire.ts';
