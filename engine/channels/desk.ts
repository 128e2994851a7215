// The engine's one door to the payment channels: routing (ordered, weighted, per merchant and
// scene), a circuit breaker per channel (opossum: opened by the error rate of timeouts and
// outages, half-open probes after a pause), failover to the next channel of the route, fees and
// currency conversion, and metrics. The shard runner calls it off the actor's path: a slow
// channel never holds up a merchant's other commands (engine/shards/channel-work.ts).
import CircuitBreaker from 'opossum';
import type { Logger } from 'pino';
import type { ChannelMetrics } from '../metrics.ts';
import type { Currency } from '../protocol/money.ts';
import type { CommandOf } from '../protocol/commands.ts';
import type { RawPayment, RawRefund } from '../redis/store.ts';
import { convert } from './fx.ts';
import { candidatesFor, feeBpsFor, routeFor, type ChannelSettings } from './settings.ts';
import {
  ChannelError, isChannelError, type ChannelAdapter, type ChannelName, type ChannelOrderRequest, type ChannelOrderState, type ChannelRefundRequest,
  type ChannelRefundState, type Scene,
} from './types.ts';

export type OpenResult = CommandOf<'payment.channel_open'>['result'];
type Operation = 'create' | 'query' | 'close' | 'refund' | 'bill';
type Call = () => Promise<unknown>;

const CIRCUIT_CLOSED = 0;
const CIRCUIT_HALF_OPEN = 1;
const CIRCUIT_OPEN = 2;

export class ChannelDesk {
  readonly settings: ChannelSettings;
  private readonly adapters: Partial<Record<ChannelName, ChannelAdapter>>;
  private readonly breakers = new Map<ChannelName, CircuitBreaker<[Call], unknown>>();
  private readonly metrics: ChannelMetrics | null;
  private readonly log: Logger;

  constructor(opts: { settings: ChannelSettings; adapters: Partial<Record<ChannelName, ChannelAdapter>>; metrics: ChannelMetrics | null; log: Logger }) {
    this.settings = opts.settings;
    this.adapters = opts.adapters;
    this.metrics = opts.metrics;
    this.log = opts.log;
    const b = opts.settings.breaker;
    for (const name of Object.keys(opts.adapters) as ChannelName[]) {
      const breaker = new CircuitBreaker<[Call], unknown>((call: Call) => call(), {
        // The adapters time their own requests out (ChannelError timeout); opossum only counts.
        timeout: false,
        errorThresholdPercentage: b.error_threshold_percentage,
        volumeThreshold: b.volume_threshold,
        resetTimeout: b.reset_timeout_ms,
        rollingCountTimeout: b.rolling_window_ms,
        // A refusal (bad request, order already paid …) says nothing about the channel's health.
        errorFilter: (err: unknown) => isChannelError(err) && !err.retryable,
      });
      breaker.on('open', () => this.circuit(name, CIRCUIT_OPEN));
      breaker.on('halfOpen', () => this.circuit(name, CIRCUIT_HALF_OPEN));
      breaker.on('close', () => this.circuit(name, CIRCUIT_CLOSED));
      this.breakers.set(name, breaker);
    }
  }

  has(channel: string): channel is ChannelName {
    return channel in this.adapters;
  }

  adapter(channel: ChannelName): ChannelAdapter {
    const a = this.adapters[channel];
    if (!a) throw new Error(`assertion: channel ${channel} is not configured`);
    return a;
  }

  circuitOpen(channel: ChannelName): boolean {
    return this.breakers.get(channel)?.opened ?? false;
  }

  /**
   * Opens the channel order of a pending payment on the first channel of its route that takes
   * it. Never throws for channel trouble: a payment no channel would take gets a failure result.
   */
  async open(p: RawPayment): Promise<OpenResult> {
    const candidates = p.method === 'auto'
      ? candidatesFor(routeFor(this.settings, p.merchant_id, p.scene as Scene), p.id, (c) => this.has(c))
      : this.has(p.method) ? [p.method] : [];
    if (candidates.length === 0) return { ok: false, code: 'payment.method_unavailable', message: `no channel is configured for method ${p.method}` };
    let lastError = 'no channel answered';
    for (let i = 0; i < candidates.length; i++) {
      const channel = candidates[i] as ChannelName;
      // An open circuit is skipped while another channel remains; the last is always tried.
      if (this.circuitOpen(channel) && i < candidates.length - 1) {
        this.metrics?.requests.labels(channel, 'create', 'circuit_open').inc();
        lastError = `${channel}: circuit open`;
        continue;
      }
      try {
        const priced = this.price(p, channel);
        const order = await this.call(channel, 'create', () => this.adapter(channel).createOrder({ ...this.orderRequest(p, channel), ...priced.request }));
        if (i > 0) this.metrics?.failovers.labels(candidates[0] as ChannelName, channel).inc();
        return {
          ok: true, channel, channel_order_id: order.channel_order_id, next_action: order.next_action,
          channel_amount: priced.request.amount, channel_currency: priced.request.currency as Currency,
          fx_rate: priced.fxRate, fx_as_of: priced.fxAsOf, fee_bps: feeBpsFor(this.settings, p.merchant_id, channel),
        };
      } catch (err) {
        lastError = `${channel}: ${(err as Error).message}`;
        this.log.warn({ channel, payment_id: p.id, err: (err as Error).message }, 'channel order not opened');
      }
    }
    return { ok: false, code: 'channel.unavailable', message: truncate(`no channel could open the order (${lastError})`, 200) };
  }

  /** The channel's view of a payment's order (补单). */
  query(p: RawPayment): Promise<ChannelOrderState> {
    const channel = this.channelOf(p);
    return this.call(channel, 'query', () => this.adapter(channel).queryOrder(p.id, p.channel_order_id || null));
  }

  /** Closes a payment's order at its channel (canceled or expired here). */
  close(p: RawPayment): Promise<void> {
    const channel = this.channelOf(p);
    return this.call(channel, 'close', () => this.adapter(channel).closeOrder(p.id, p.channel_order_id || null));
  }

  /**
   * Asks the payment's channel to refund (part of) it: new, or the same refund again (the refund
   * id is the channel's out_refund_no, which every channel treats as one refund however often it
   * is sent). The amount is the refund's, or for a payment converted into the channel's currency
   * (refunded in full only, see paymentRefund-4.lua) what the buyer paid there.
   */
  refund(p: RawPayment, r: RawRefund): Promise<ChannelRefundState> {
    const channel = this.channelOf(p);
    return this.call(channel, 'refund', () => this.adapter(channel).refund(this.refundRequest(p, r, channel)));
  }

  /** The refund request for a refund of a channel payment (pure, for tests too). */
  refundRequest(p: RawPayment, r: RawRefund, channel: ChannelName): ChannelRefundRequest {
    if (r.payment_id !== p.id) throw new Error(`assertion: refund ${r.id} is not of payment ${p.id}`);
    return {
      out_trade_no: p.id,
      out_refund_no: r.id,
      amount: channelRefundAmount(p, r),
      total_amount: p.channel_amount,
      currency: p.channel_currency,
      ...(r.reason !== '' && { reason: r.reason }),
      notify_url: this.notifyUrl(channel),
      channel_order_id: p.channel_order_id || null,
    };
  }

  private notifyUrl(channel: ChannelName): string {
    return `${this.settings.public_url.replace(/\/$/, '')}/v1/notify/${channel}`;
  }

  private channelOf(p: RawPayment): ChannelName {
    // An operating condition (the channel was removed from the settings while payments were pending): logged by the caller.
    if (!this.has(p.channel)) throw new Error(`payment ${p.id} is on channel ${p.channel || '(none)'}, which is not configured`);
    return p.channel;
  }

  private orderRequest(p: RawPayment, channel: ChannelName): ChannelOrderRequest {
    let ip = '127.0.0.1';
    if (p.buyer !== '') ip = (JSON.parse(p.buyer) as { ip?: string }).ip ?? ip;
    return {
      out_trade_no: p.id,
      amount: p.amount,
      currency: p.currency,
      subject: p.subject === '' ? `Order ${p.out_trade_no}` : p.subject,
      scene: p.scene as Scene,
      client_ip: ip,
      notify_url: this.notifyUrl(channel),
      expires_at_ms: p.hold_expires_at_ms,
    };
  }

  /** The amount the channel charges: the payment's, or converted into the channel's currency. */
  private price(p: RawPayment, channel: ChannelName): { request: { amount: number; currency: string }; fxRate: string | null; fxAsOf: string | null } {
    const want = this.settings.channels[channel]?.currency;
    if (!want || want === p.currency) return { request: { amount: p.amount, currency: p.currency }, fxRate: null, fxAsOf: null };
    const table = this.settings.fx;
    if (!table) throw new ChannelError(channel, 'rejected', `no exchange rates configured for ${p.currency} → ${want}`);
    const c = convert(p.amount, p.currency as Currency, want, table);
    return { request: { amount: c.amount, currency: c.currency }, fxRate: c.rate, fxAsOf: c.rate_as_of };
  }

  private async call<T>(channel: ChannelName, operation: Operation, fn: () => Promise<T>): Promise<T> {
    const breaker = this.breakers.get(channel);
    if (!breaker) throw new Error(`assertion: no breaker for ${channel}`);
    const end = this.metrics?.duration.startTimer({ channel, operation });
    try {
      const out = (await breaker.fire(fn)) as T;
      this.metrics?.requests.labels(channel, operation, 'ok').inc();
      return out;
    } catch (err) {
      const result = isChannelError(err) ? (err.code === 'timeout' ? 'timeout' : err.retryable ? 'error' : 'rejected')
        : (err as { code?: string }).code === 'EOPENBREAKER' ? 'circuit_open' : 'error';
      this.metrics?.requests.labels(channel, operation, result).inc();
      if (result === 'circuit_open') throw new ChannelError(channel, 'unavailable', 'circuit open', { cause: err });
      throw err;
    } finally {
      end?.();
    }
  }

  private circuit(channel: ChannelName, state: number): void {
    this.metrics?.circuitState.labels(channel).set(state);
    this.log.warn({ channel, circuit: ['closed', 'half-open', 'open'][state] }, 'channel circuit changed');
  }

  shutdown(): void {
    for (const b of this.breakers.values()) b.shutdown();
  }
}

/**
 * What a refund takes back at the channel, in the channel's currency: the refund's own amount, or
 * for a converted payment the whole channel amount (paymentRefund-4.lua allows only a refund of
 * everything captured there, so no rate is applied twice and nothing is rounded).
 */
export function channelRefundAmount(p: Pick<RawPayment, 'fx_rate' | 'channel_amount' | 'amount_captured'>, r: Pick<RawRefund, 'amount'>): number {
  if (p.fx_rate === '') return r.amount;
  if (r.amount !== p.amount_captured) throw new Error('assertion: a part refund of a converted payment');
  return p.channel_amount;
}

const truncate = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
