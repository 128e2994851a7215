// The channel settings of a deployment: which channels exist and how to reach them, how payments
// are routed (per merchant and scene, ordered, weighted), what each channel charges (per channel,
// overridable per merchant), and the exchange-rate table for cross-border channels. One JSON file
// (PEAKPAY_CHANNELS_FILE), read by the engine (opening, querying, closing orders) and the ingress
// (verifying callbacks). `npm start` writes one that points at the local sandboxes.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CURRENCIES } from '../protocol/money.ts';
import { CHANNELS, type ChannelName, type Scene } from './types.ts';

export const ROUTE_CHANNELS_MAX = CHANNELS.length;
export const WEIGHT_MAX = 10_000;

const channelNameSchema = z.enum(CHANNELS);
const routeSchema = z
  .array(z.strictObject({ channel: channelNameSchema, weight: z.number().int().min(0).max(WEIGHT_MAX) }))
  .min(1)
  .max(ROUTE_CHANNELS_MAX)
  .refine((r) => new Set(r.map((x) => x.channel)).size === r.length, 'a channel appears twice in a route')
  .refine((r) => r.some((x) => x.weight > 0), 'a route needs a channel with weight > 0');
export type Route = z.infer<typeof routeSchema>;

/** Routes by scene; "*" is the fallback for scenes not named. */
const routeTableSchema = z.partialRecord(z.enum(['*', 'pc', 'app', 'mini_program', 'h5']), routeSchema);

export const channelSettingsSchema = z.strictObject({
  /** Where channels reach our callbacks: <public_url>/v1/notify/<channel>. */
  public_url: z.url(),
  channels: z.partialRecord(
    channelNameSchema,
    z.strictObject({
      /** The adapter's own configuration (engine/channels/<name>/adapter.ts): URLs, ids, keys. */
      config: z.record(z.string(), z.unknown()),
      /** What the channel charges, basis points of the amount (0.6% = 60). */
      fee_bps: z.number().int().min(0).max(10_000),
      /** The currency the channel charges buyers in (cross-border); absent = the payment's own. */
      currency: z.enum(CURRENCIES).optional(),
      request_timeout_ms: z.number().int().min(100).max(60_000).default(3_000),
    }),
  ),
  routes: z.strictObject({
    default: routeTableSchema.refine((t) => t['*'] !== undefined, 'the default routes need "*" (every scene)'),
    merchants: z.record(z.string(), routeTableSchema).default({}),
  }),
  /** Per merchant fee overrides, basis points by channel. */
  fees: z.record(z.string(), z.partialRecord(channelNameSchema, z.number().int().min(0).max(10_000))).default({}),
  /** Rates as decimal strings, never floats: units of the currency per 1 unit of `base`. */
  fx: z
    .strictObject({
      base: z.enum(CURRENCIES),
      as_of: z.string().min(1).max(64),
      rates: z.partialRecord(z.enum(CURRENCIES), z.string().regex(/^\d{1,12}(\.\d{1,12})?$/)),
    })
    .optional(),
  /** 补单: a pending channel payment is first queried this long after it was created, then every query_every_ms. */
  query_after_ms: z.number().int().min(100).max(3_600_000).default(30_000),
  query_every_ms: z.number().int().min(100).max(3_600_000).default(60_000),
  /** Circuit breaker per channel (opossum). */
  breaker: z
    .strictObject({
      error_threshold_percentage: z.number().int().min(1).max(100).default(50),
      volume_threshold: z.number().int().min(1).max(10_000).default(10),
      reset_timeout_ms: z.number().int().min(100).max(600_000).default(5_000),
      rolling_window_ms: z.number().int().min(1_000).max(600_000).default(10_000),
    })
    .prefault({}),
});
export type ChannelSettings = z.infer<typeof channelSettingsSchema>;

export function loadChannelSettings(path: string): ChannelSettings {
  const parsed = channelSettingsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`channel settings ${path}: ${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The route of a payment: its merchant's for its scene, else the merchant's "*", else the default's. */
export function routeFor(s: ChannelSettings, merchantId: string, scene: Scene): Route {
  const m = s.routes.merchants[merchantId];
  const route = m?.[scene] ?? m?.['*'] ?? s.routes.default[scene] ?? s.routes.default['*'];
  if (!route) throw new Error(`assertion: no route for scene ${scene} (the default table needs "*")`);
  return route;
}

export function feeBpsFor(s: ChannelSettings, merchantId: string, channel: ChannelName): number {
  const override = s.fees[merchantId]?.[channel];
  if (override !== undefined) return override;
  const c = s.channels[channel];
  if (!c) throw new Error(`assertion: fee of unconfigured channel ${channel}`);
  return c.fee_bps;
}

/**
 * The fee on an amount: basis points, rounded half up to the minor unit, in integer arithmetic
 * (the same rule paymentChannelNotify-4.lua applies; test/lua/channel-fees.test.ts checks both agree).
 */
export function feeOf(amount: number, feeBps: number): number {
  if (!Number.isSafeInteger(amount) || amount < 0 || !Number.isSafeInteger(feeBps)) throw new Error('assertion: fee of a non-integer');
  return Number((BigInt(amount) * BigInt(feeBps) + 5000n) / 10000n);
}

/** FNV-1a 32-bit: a stable spread of payment ids over the weights. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The order in which a payment tries channels: the first chosen by weight (deterministic per
 * payment id, so opening again picks the same channel and the channel deduplicates the order),
 * then the others in route order. Only configured channels; weight 0 = backup only.
 */
export function candidatesFor(route: Route, paymentId: string, configured: (c: ChannelName) => boolean): ChannelName[] {
  const usable = route.filter((r) => configured(r.channel));
  const total = usable.reduce((s, r) => s + r.weight, 0);
  if (usable.length === 0) return [];
  let first = usable[0] as Route[number];
  if (total > 0) {
    let point = fnv1a(paymentId) % total;
    for (const r of usable) {
      if (point < r.weight) {
        first = r;
        break;
      }
      point -= r.weight;
    }
  }
  return [first.channel, ...usable.filter((r) => r !== first).map((r) => r.channel)];
}
