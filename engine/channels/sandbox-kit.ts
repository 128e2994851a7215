// The plumbing every channel sandbox shares: an HTTP server, an order book, fault injection
// (latency, error rate, outage, lost callbacks) and a control API, so the whole payment flow can be
// rehearsed locally (MISSION §3.3 沙箱) and failover can be forced on command. Each channel's
// sandbox.ts plugs in only what is its own: its API routes, its signatures and its callback format.
//
// Control API (JSON, no auth: the sandbox listens on loopback only):
//   POST /__sandbox/faults  { outage?, latencyMs?, errorRate?, dropCallbacks?, autoPayAfterMs? }
//   POST /__sandbox/pay     { out_trade_no, amount? }   the buyer pays (amount? simulates a mismatch)
//   GET  /__sandbox/orders
//   POST /__sandbox/reset
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChannelName } from './types.ts';

export const SANDBOX_BODY_BYTES_MAX = 1024 * 1024;
export const SANDBOX_ORDERS_MAX = 1_000_000;
export const CALLBACK_ATTEMPTS_MAX = 3;
export const CALLBACK_RETRY_DELAY_MS = 500;
export const CALLBACK_TIMEOUT_MS = 5_000;

export type SandboxFaults = {
  /** Every API request fails at the connection (reset), as a channel in outage does. */
  outage: boolean;
  /** Added before every API answer. */
  latencyMs: number;
  /** Share of API requests (0..1) answered with the channel's system error. */
  errorRate: number;
  /** Callbacks are not sent (a lost callback: 补单 must find the payment). */
  dropCallbacks: boolean;
  /** The simulated buyer pays every new order after this long; null = only on /__sandbox/pay. */
  autoPayAfterMs: number | null;
};

export const DEFAULT_FAULTS: SandboxFaults = { outage: false, latencyMs: 0, errorRate: 0, dropCallbacks: false, autoPayAfterMs: null };

export type SandboxRefund = { out_refund_no: string; amount: number; status: 'pending' | 'succeeded' | 'failed'; refund_id: string; at_ms: number };

export type SandboxOrder = {
  out_trade_no: string;
  amount: number;
  currency: string;
  subject: string;
  notify_url: string;
  status: 'pending' | 'succeeded' | 'closed';
  /** The channel's order id given at creation (prepay_id …) and transaction id given when paid. */
  order_id: string;
  trade_no: string | null;
  /** What the buyer actually paid (differs from amount only when a test simulates a mismatch). */
  paid_amount: number | null;
  created_ms: number;
  paid_ms: number | null;
  expires_ms: number;
  refunds: SandboxRefund[];
  /** Channel-specific fields the sandbox wants to keep (scene, ip, return_url …). */
  extra: Record<string, unknown>;
};

export type SandboxRequest = {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  raw: Buffer;
};
export type SandboxResponse = { status: number; headers?: Record<string, string>; body: string | Buffer };
export type OutgoingCallback = { url: string; headers: Record<string, string>; body: string };

export type SandboxSpec = {
  channel: ChannelName;
  /** The channel's API. null → 404. */
  handle(req: SandboxRequest, book: OrderBook): Promise<SandboxResponse | null>;
  /** The channel's answer when errorRate strikes (its SYSTEM_ERROR shape). */
  systemError(): SandboxResponse;
  /** The signed callback for a paid order, or for one of its refunds. */
  callback(order: SandboxOrder, refund: SandboxRefund | null): Promise<OutgoingCallback>;
  /** Fee the channel charges on `amount` (for bills), minor units. */
  feeOf(amount: number): number;
};

export type CallbackRecord = { url: string; status: number | null; headers: Record<string, string>; body: string; at_ms: number; delivered: boolean };

export class OrderBook {
  readonly orders = new Map<string, SandboxOrder>();
  readonly callbacks: CallbackRecord[] = [];
  private readonly kit: SandboxKit;

  constructor(kit: SandboxKit) {
    this.kit = kit;
  }

  /** Opens an order; re-opening the same out_trade_no with the same amount returns the existing one. */
  open(o: Omit<SandboxOrder, 'status' | 'order_id' | 'trade_no' | 'paid_amount' | 'created_ms' | 'paid_ms' | 'refunds'> & { order_id?: string }): SandboxOrder {
    const existing = this.orders.get(o.out_trade_no);
    if (existing) return existing;
    if (this.orders.size >= SANDBOX_ORDERS_MAX) throw new Error('sandbox order book full');
    const order: SandboxOrder = {
      ...o,
      order_id: o.order_id ?? randomId('ord'),
      status: 'pending',
      trade_no: null,
      paid_amount: null,
      created_ms: Date.now(),
      paid_ms: null,
      refunds: [],
    };
    this.orders.set(order.out_trade_no, order);
    const auto = this.kit.faults.autoPayAfterMs;
    if (auto !== null) setTimeout(() => void this.pay(order.out_trade_no).catch(() => undefined), auto).unref();
    return order;
  }

  get(outTradeNo: string): SandboxOrder | undefined {
    return this.orders.get(outTradeNo);
  }

  /** The buyer pays: the order succeeds and the callback is sent (unless callbacks are dropped). */
  async pay(outTradeNo: string, amount?: number): Promise<SandboxOrder> {
    const order = this.orders.get(outTradeNo);
    if (!order) throw new Error(`sandbox: no order ${outTradeNo}`);
    if (order.status !== 'pending') return order;
    order.status = 'succeeded';
    order.trade_no = randomId('txn');
    order.paid_amount = amount ?? order.amount;
    order.paid_ms = Date.now();
    await this.kit.sendCallback(order, null);
    return order;
  }

  close(outTradeNo: string): 'closed' | 'paid' | 'unknown' {
    const order = this.orders.get(outTradeNo);
    if (!order) return 'unknown';
    if (order.status === 'succeeded') return 'paid';
    order.status = 'closed';
    return 'closed';
  }

  /** Records a refund (idempotent on out_refund_no) and sends its callback. */
  refund(outTradeNo: string, outRefundNo: string, amount: number): SandboxRefund | 'not_paid' | 'too_much' | 'unknown' {
    const order = this.orders.get(outTradeNo);
    if (!order) return 'unknown';
    const seen = order.refunds.find((r) => r.out_refund_no === outRefundNo);
    if (seen) return seen;
    if (order.status !== 'succeeded') return 'not_paid';
    const refunded = order.refunds.reduce((s, r) => s + r.amount, 0);
    if (refunded + amount > (order.paid_amount ?? order.amount)) return 'too_much';
    const r: SandboxRefund = { out_refund_no: outRefundNo, amount, status: 'succeeded', refund_id: randomId('rfd'), at_ms: Date.now() };
    order.refunds.push(r);
    void this.kit.sendCallback(order, r);
    return r;
  }

  /** Payment and refund lines of one Asia/Shanghai day (YYYY-MM-DD). */
  bill(day: string): Array<{ order: SandboxOrder; refund: SandboxRefund | null; at_ms: number; fee: number }> {
    const lines: Array<{ order: SandboxOrder; refund: SandboxRefund | null; at_ms: number; fee: number }> = [];
    for (const order of this.orders.values()) {
      if (order.paid_ms !== null && shanghaiDay(order.paid_ms) === day) {
        lines.push({ order, refund: null, at_ms: order.paid_ms, fee: this.kit.spec.feeOf(order.paid_amount ?? order.amount) });
      }
      for (const r of order.refunds) if (shanghaiDay(r.at_ms) === day) lines.push({ order, refund: r, at_ms: r.at_ms, fee: 0 });
    }
    return lines;
  }
}

export function shanghaiDay(ms: number): string {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 10);
}

export function randomId(prefix: string): string {
  return `${prefix}${randomBytes(10).toString('hex')}`;
}

export class SandboxKit {
  readonly spec: SandboxSpec;
  faults: SandboxFaults = { ...DEFAULT_FAULTS };
  readonly book: OrderBook;
  private server: Server | null = null;
  private baseUrl = '';

  constructor(spec: SandboxSpec) {
    this.spec = spec;
    this.book = new OrderBook(this);
  }

  get url(): string {
    if (!this.server) throw new Error('assertion: sandbox not started');
    return this.baseUrl;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => void this.onRequest(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.baseUrl = `http://${host}:${(server.address() as AddressInfo).port}`;
    return this.baseUrl;
  }

  setFaults(f: Partial<SandboxFaults>): void {
    this.faults = { ...this.faults, ...f };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  async sendCallback(order: SandboxOrder, refund: SandboxRefund | null): Promise<void> {
    if (this.faults.dropCallbacks) {
      this.book.callbacks.push({ url: order.notify_url, status: null, headers: {}, body: '', at_ms: Date.now(), delivered: false });
      return;
    }
    const cb = await this.spec.callback(order, refund);
    for (let attempt = 1; attempt <= CALLBACK_ATTEMPTS_MAX; attempt++) {
      let status: number | null = null;
      try {
        const res = await fetch(cb.url, { method: 'POST', headers: cb.headers, body: cb.body, signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS) });
        status = res.status;
        await res.arrayBuffer();
      } catch {
        status = null;
      }
      const delivered = status !== null && status >= 200 && status < 300;
      this.book.callbacks.push({ url: cb.url, status, headers: cb.headers, body: cb.body, at_ms: Date.now(), delivered });
      if (delivered) return;
      await new Promise((r) => setTimeout(r, CALLBACK_RETRY_DELAY_MS));
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > SANDBOX_BODY_BYTES_MAX) {
          res.writeHead(413).end();
          return;
        }
        chunks.push(c as Buffer);
      }
      const u = new URL(req.url ?? '/', 'http://sandbox');
      const sreq: SandboxRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, headers: req.headers, raw: Buffer.concat(chunks) };
      const out = u.pathname.startsWith('/__sandbox/') ? await this.control(sreq) : await this.api(sreq, res);
      if (out === 'destroyed') return;
      const body = typeof out.body === 'string' ? Buffer.from(out.body) : out.body;
      res.writeHead(out.status, { 'content-length': String(body.length), ...(out.headers ?? {}) }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`sandbox error: ${(err as Error).message}`);
    }
  }

  private async api(req: SandboxRequest, res: ServerResponse): Promise<SandboxResponse | 'destroyed'> {
    const f = this.faults;
    if (f.latencyMs > 0) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.outage) {
      res.socket?.destroy();
      return 'destroyed';
    }
    if (f.errorRate > 0 && Math.random() < f.errorRate) return this.spec.systemError();
    return (await this.spec.handle(req, this.book)) ?? { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
  }

  private async control(req: SandboxRequest): Promise<SandboxResponse> {
    const json = (status: number, v: unknown): SandboxResponse => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) });
    const body = req.raw.length ? (JSON.parse(req.raw.toString('utf8')) as Record<string, unknown>) : {};
    switch (`${req.method} ${req.path}`) {
      case 'POST /__sandbox/faults':
        this.setFaults(body as Partial<SandboxFaults>);
        return json(200, this.faults);
      case 'GET /__sandbox/faults':
        return json(200, this.faults);
      case 'POST /__sandbox/pay': {
        const order = await this.book.pay(String(body.out_trade_no), typeof body.amount === 'number' ? body.amount : undefined);
        return json(200, order);
      }
      case 'GET /__sandbox/orders':
        return json(200, [...this.book.orders.values()]);
      case 'POST /__sandbox/reset':
        this.book.orders.clear();
        this.faults = { ...DEFAULT_FAULTS };
        return json(200, {});
      default:
        return json(404, { error: 'unknown control route' });
    }
  }
}
