// Builds the channel adapters named in the channel settings and the ChannelDesk over them. One
// place knows every adapter factory; each adapter parses its own config (a wrong config stops
// start-up with the channel's name).
import type { Logger } from 'pino';
import type { ChannelMetrics } from '../metrics.ts';
import { createAlipayAdapter, type AlipayConfig } from './alipay/index.ts';
import { createWechatPayAdapter, type WechatPayConfig } from './wechat_pay/index.ts';
import { createUnionPayAdapter, type UnionPayConfig } from './unionpay/index.ts';
import { createStripeAdapter, parseStripeConfig } from './stripe/index.ts';
import { createPaypalAdapter, type PaypalConfig } from './paypal/index.ts';
import { ChannelDesk } from './desk.ts';
import type { ChannelSettings } from './settings.ts';
import type { ChannelAdapter, ChannelCrypto, ChannelName } from './types.ts';

type Factory = (config: Record<string, unknown>, deps: { crypto: ChannelCrypto; timeoutMs: number }) => ChannelAdapter;

const FACTORIES: Partial<Record<ChannelName, Factory>> = {
  alipay: (c, d) => createAlipayAdapter(c as AlipayConfig, d),
  wechat_pay: (c, d) => createWechatPayAdapter(c as WechatPayConfig, d),
  unionpay: (c, d) => createUnionPayAdapter(c as UnionPayConfig, d),
  stripe: (c, d) => createStripeAdapter(parseStripeConfig(c), d),
  // PayPal finds orders by the id createOrder returned, which the engine passes back (channel_order_id).
  paypal: (c, d) => createPaypalAdapter(c as PaypalConfig, d),
};

export function buildAdapters(settings: ChannelSettings, crypto: ChannelCrypto): Partial<Record<ChannelName, ChannelAdapter>> {
  const out: Partial<Record<ChannelName, ChannelAdapter>> = {};
  for (const [name, c] of Object.entries(settings.channels) as [ChannelName, NonNullable<ChannelSettings['channels'][ChannelName]>][]) {
    const make = FACTORIES[name];
    if (!make) throw new Error(`channel settings: channel ${name} has no adapter in this build`);
    out[name] = make(c.config, { crypto, timeoutMs: c.request_timeout_ms });
  }
  return out;
}

export function buildDesk(settings: ChannelSettings, opts: { crypto: ChannelCrypto; metrics: ChannelMetrics | null; log: Logger }): ChannelDesk {
  return new ChannelDesk({ settings, adapters: buildAdapters(settings, opts.crypto), metrics: opts.metrics, log: opts.log });
}
