// The k6 scenarios, run by the Node load generator instead (same shapes, loadtest/k6/lib/shapes.ts;
// same target resolution, loadtest/k6/lib/target.ts) against a running peakpay:
//   npx tsx loadtest/run.ts rehearsal      [--normal-rate 200] [--spike-factor 10] [--warm-s 60] [--spike-s 120] [--after-s 120] [--p99-ms 1000]
//   npx tsx loadtest/run.ts hot-merchant   [--rate 1000] [--hold-s 120] [--p99-ms 250]
//   npx tsx loadtest/run.ts payments       [--rate 200] [--duration-s 30] [--p99-ms 250]
//   npx tsx loadtest/run.ts channel-outage --sandbox-url http://127.0.0.1:<port> [--primary wechat_pay] [--rate 50] [--duration-s 180] [--outage-at-s 60] [--outage-s 60]
// Target: BASE_URL, MERCHANT_ID/MERCHANT_SECRET/ACCOUNT_IDS, SEED_FILE, AMOUNT from the environment,
// else .data/demo-merchant.json. Prints a JSON summary; exits 1 when a threshold is missed, like k6.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { authorization } from '../ingress/signature.ts';
import { DATA_DIR } from '../scripts/local-env.ts';
import { hotMerchantStages, rehearsalStages, type Stage } from './k6/lib/shapes.ts';
import { loadTarget, tryRead, type Merchant } from './k6/lib/target.ts';
import { runLoad, type Iteration } from './lib/generator.ts';
import { PaymentRequests } from './lib/payments.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'normal-rate': { type: 'string', default: '200' }, 'spike-factor': { type: 'string', default: '10' },
    'warm-s': { type: 'string', default: '60' }, 'ramp-s': { type: 'string', default: '10' }, 'spike-s': { type: 'string', default: '120' },
    'after-s': { type: 'string', default: '120' }, rate: { type: 'string' }, 'hold-s': { type: 'string', default: '120' },
    'duration-s': { type: 'string' }, 'p99-ms': { type: 'string' }, 'in-flight-max': { type: 'string', default: '3000' },
    'sandbox-url': { type: 'string', default: '' }, primary: { type: 'string', default: 'wechat_pay' },
    'outage-at-s': { type: 'string', default: '60' }, 'outage-s': { type: 'string', default: '60' },
  },
});
const scenario = positionals[0] ?? '';
const target = loadTarget(process.env, tryRead(() => readFileSync(join(DATA_DIR, 'demo-merchant.json'), 'utf8')),
  process.env.SEED_FILE ? readFileSync(process.env.SEED_FILE, 'utf8') : null);
const reqs = new PaymentRequests();
let n = 0;
const next = (merchants: Merchant[]) => {
  const m = merchants[n % merchants.length] as Merchant;
  const account = m.accounts[Math.floor(n / merchants.length) % Math.max(1, m.accounts.length)];
  n++;
  if (!account) throw new Error(`merchant ${m.id} has no wallet: set ACCOUNT_IDS`);
  return { m: { id: m.id, secret: m.secret, accounts: m.accounts }, account };
};
const parse = (body: string): Record<string, unknown> => {
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch {
    return {};
  }
};

/** Accepted: 201 succeeded, or 202 processing (queued durably, decided later). */
const balancePayment = (merchants: Merchant[]): Iteration => async (send) => {
  const { m, account } = next(merchants);
  const res = await send(reqs.create(m, account, target.amount, 'automatic').req);
  const status = parse(res.body).status;
  return (res.status === 201 && status === 'succeeded') || (res.status === 202 && status === 'processing');
};

let stages: Stage[];
let startRate: number;
let p99Max: number;
let iteration: Iteration;
const onPrimaryDuringOutage: number[] = [];
const byChannel: Record<string, number> = {};
let operator: Promise<void> = Promise.resolve();

switch (scenario) {
  case 'rehearsal': {
    startRate = Number(values['normal-rate']);
    stages = rehearsalStages(startRate, Number(values['spike-factor']), {
      warmS: Number(values['warm-s']), rampS: Number(values['ramp-s']), spikeS: Number(values['spike-s']), afterS: Number(values['after-s']),
    });
    p99Max = Number(values['p99-ms'] ?? 1000);
    iteration = balancePayment(target.merchants);
    break;
  }
  case 'hot-merchant': {
    startRate = 10;
    stages = hotMerchantStages(Number(values.rate ?? 1000), Number(values['hold-s']));
    p99Max = Number(values['p99-ms'] ?? 250);
    iteration = balancePayment(target.merchants.slice(0, 1));
    break;
  }
  case 'payments': {
    startRate = Number(values.rate ?? 200);
    stages = [{ durationS: Number(values['duration-s'] ?? 30), target: startRate }];
    p99Max = Number(values['p99-ms'] ?? 250);
    iteration = balancePayment(target.merchants);
    break;
  }
  case 'channel-outage': {
    // Against the sandbox control contract: POST <sandbox>/__sandbox/faults {outage, latencyMs, errorRate}.
    const sandbox = values['sandbox-url'].replace(/\/$/, '');
    if (!sandbox) throw new Error('--sandbox-url is required (the control address of the primary channel sandbox)');
    const faults = async (outage: boolean) => {
      const r = await fetch(`${sandbox}/__sandbox/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outage, latencyMs: 0, errorRate: 0 }) });
      if (r.status !== 200) throw new Error(`sandbox control answered ${r.status}`);
    };
    await faults(false);
    startRate = Number(values.rate ?? 50);
    stages = [{ durationS: Number(values['duration-s'] ?? 180), target: startRate }];
    p99Max = Number(values['p99-ms'] ?? 1000);
    const outageAtS = Number(values['outage-at-s']);
    const outageS = Number(values['outage-s']);
    const t0 = Date.now();
    operator = (async () => {
      await new Promise((r) => setTimeout(r, outageAtS * 1000));
      await faults(true);
      await new Promise((r) => setTimeout(r, outageS * 1000));
      await faults(false);
    })();
    iteration = async (send) => {
      const m = target.merchants[n++ % target.merchants.length] as Merchant;
      const id = reqs.next();
      const body = JSON.stringify({ out_trade_no: `C${id}`, amount: target.amount, currency: 'CNY', method: 'auto', capture: 'automatic', scene: 'pc', subject: 'Game card 100' });
      const res = await send({
        method: 'POST', path: '/v1/payments', body, tag: 'create',
        headers: { 'content-type': 'application/json', 'idempotency-key': `k${id}`, authorization: authorization(m.id, m.secret, 'POST', '/v1/payments', body) },
      });
      const p = parse(res.body);
      const channel = typeof p.channel === 'string' ? p.channel : 'none';
      byChannel[channel] = (byChannel[channel] ?? 0) + 1;
      const t = (Date.now() - t0) / 1000;
      if (t > outageAtS + 2 && t < outageAtS + outageS - 2 && channel === values.primary) onPrimaryDuringOutage.push(t);
      return res.status === 201 && ['requires_action', 'pending'].includes(String(p.status)) && channel !== 'none';
    };
    break;
  }
  default:
    console.error('usage: npx tsx loadtest/run.ts rehearsal|hot-merchant|payments|channel-outage [options]');
    process.exit(2);
}

const r = await runLoad(target.baseUrl, { kind: 'open', startRate, stages, inFlightMax: Number(values['in-flight-max']) }, iteration);
await operator;
const p99 = Math.max(0, ...Object.values(r.latency).map((l) => l.p99));
const thresholds = {
  [`p99 < ${p99Max} ms`]: p99 < p99Max,
  'failed requests < 0.1%': r.errors <= r.requests * 0.001,
  'accepted > 99.9%': r.acknowledged >= r.iterations * 0.999,
  'no dropped arrivals': r.dropped === 0,
  ...(scenario === 'channel-outage' && { 'none on the primary during its outage': onPrimaryDuringOutage.length === 0 }),
};
console.log(JSON.stringify({
  scenario, base_url: target.baseUrl, seconds: r.seconds, iterations: r.iterations, acknowledged: r.acknowledged, dropped: r.dropped,
  errors: r.errors, statuses: r.statuses, latency_ms: r.latency, ...(scenario === 'channel-outage' && { by_channel: byChannel }),
  error_samples: r.errorSamples, thresholds,
}, null, 2));
process.exit(Object.values(thresholds).every(Boolean) ? 0 : 1);
