// Every channel's sandbox at once, and the channel settings that point the engine and ingress at
// them: what `npm start` runs unless PEAKPAY_CHANNELS_FILE names real credentials, and what the
// end-to-end tests and load tools use. Routes follow the source article's shape: WeChat Pay takes
// ~80% of traffic, Alipay the rest and the primary's traffic when it fails, UnionPay is a backup
// only; Stripe and PayPal charge cross-border buyers in USD through the rate table.
import type { SandboxKit } from './sandbox-kit.ts';
import { channelSettingsSchema, type ChannelSettings } from './settings.ts';
import type { ChannelName } from './types.ts';
import { startAlipaySandbox } from './alipay/index.ts';
import { startPaypalSandbox } from './paypal/index.ts';
import { startStripeSandbox } from './stripe/index.ts';
import { startUnionPaySandbox } from './unionpay/index.ts';
import { startWechatPaySandbox } from './wechat_pay/index.ts';

/** Fixed local ports (base + index), so operators and k6 scenarios can reach each sandbox's control API. */
export const SANDBOX_BASE_PORT_DEFAULT = 28_101;
export const SANDBOX_ORDER: readonly ChannelName[] = ['wechat_pay', 'alipay', 'unionpay', 'stripe', 'paypal'];

/** Illustrative rates (CNY base), decimal strings; a deployment loads its own table. */
export const DEMO_FX = { base: 'CNY', as_of: '2026-11-28T00:00:00+08:00', rates: { USD: '0.1380', EUR: '0.1305', HKD: '1.0760', JPY: '20.85' } } as const;

export type Sandboxes = {
  kits: Record<ChannelName, SandboxKit>;
  urls: Record<ChannelName, string>;
  settings: ChannelSettings;
  stop(): Promise<void>;
};

export async function startSandboxes(opts: { publicUrl: string; host?: string; basePort?: number; queryAfterMs?: number; queryEveryMs?: number }): Promise<Sandboxes> {
  const host = opts.host ?? '127.0.0.1';
  const port = (c: ChannelName) => (opts.basePort === 0 ? 0 : (opts.basePort ?? SANDBOX_BASE_PORT_DEFAULT) + SANDBOX_ORDER.indexOf(c));
  const notify = (c: ChannelName) => `${opts.publicUrl.replace(/\/$/, '')}/v1/notify/${c}`;
  const [wx, ali, up, stripe, paypal] = await Promise.all([
    startWechatPaySandbox({ host, port: port('wechat_pay') }),
    startAlipaySandbox({ host, port: port('alipay') }),
    startUnionPaySandbox({ host, port: port('unionpay') }),
    // Stripe and PayPal call one account-level webhook endpoint, not a per-order notify_url.
    startStripeSandbox({ host, port: port('stripe'), webhookUrl: notify('stripe') }),
    startPaypalSandbox({ host, port: port('paypal'), webhookUrl: notify('paypal') }),
  ]);
  const settings = channelSettingsSchema.parse({
    public_url: opts.publicUrl,
    channels: {
      wechat_pay: { config: wx.config, fee_bps: 60 },
      alipay: { config: ali.config, fee_bps: 60 },
      unionpay: { config: up.config, fee_bps: 30 },
      stripe: { config: stripe.config, fee_bps: 340, currency: 'USD' },
      paypal: { config: paypal.config, fee_bps: 440, currency: 'USD' },
    },
    routes: {
      default: {
        '*': [{ channel: 'wechat_pay', weight: 80 }, { channel: 'alipay', weight: 20 }, { channel: 'unionpay', weight: 0 }],
      },
    },
    fx: DEMO_FX,
    ...(opts.queryAfterMs !== undefined && { query_after_ms: opts.queryAfterMs }),
    ...(opts.queryEveryMs !== undefined && { query_every_ms: opts.queryEveryMs }),
  });
  const kits = { wechat_pay: wx.kit, alipay: ali.kit, unionpay: up.kit, stripe: stripe.kit, paypal: paypal.kit };
  return {
    kits,
    urls: { wechat_pay: wx.url, alipay: ali.url, unionpay: up.url, stripe: stripe.url, paypal: paypal.url },
    settings,
    async stop() {
      await Promise.all(Object.values(kits).map((k) => k.close()));
    },
  };
}
