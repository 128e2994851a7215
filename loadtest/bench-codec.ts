// What packing an event costs, side by side, in three fresh processes: nothing else loaded; ioredis
// loaded (it puts String.prototype into V8's dictionary mode, see engine/infra.ts); and
// engine/infra.ts loaded (ioredis, then String.prototype restored), as in every peakpay process.
//   npm run bench:codec
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { PROJECT_ROOT } from '../scripts/local-env.ts';

const ROUNDS = 3;

const child = (imports: string) => `
${imports}
const { encode } = await import('./engine/protocol/codec.ts');
// The payment.succeeded of an automatic capture, as the engine makes it (engine/shards/outcome.ts).
const now = 1795878988005;
const event = {
  v: 1, id: 'evt_cmd_Q2VYR1N5WJ6K0HDEFGHJKMNPQR_0', type: 'payment.succeeded', merchant_id: 'mch_7Q2VYR1N5W', cmd_id: 'cmd_Q2VYR1N5WJ6K0HDEFGHJKMNPQR', ts_ms: now,
  payment: { id: 'pay_Q2VYR1N5WJ6K0HDEFGHJKMNPQR', merchant_id: 'mch_7Q2VYR1N5W', out_trade_no: 'ORD20261128000123', amount: 1999, currency: 'CNY',
    amount_captured: 1999, amount_refunded: 0, method: 'balance', channel: 'balance', scene: 'pc', subject: 'Game card 100', account_id: 'wallet_buyer_42',
    status: 'succeeded', failure: null, next_action: null, buyer: null, metadata: null, hold_expires_at: null,
    created_at: '2026-11-28T15:16:28.005Z', updated_at: '2026-11-28T15:16:28.005Z', version: 1 },
  account: { account_id: 'wallet_buyer_42', currency: 'CNY', available: 98001, held: 0 },
  postings: [
    { kind: 'capture', ledger_account: 'wallet:wallet_buyer_42:available', amount: -1999, currency: 'CNY' },
    { kind: 'capture', ledger_account: 'merchant:settlement', amount: 1999, currency: 'CNY' },
  ],
  memo: null, result_code: 0, cmd_events: 1,
  payment_record: { id: 'pay_Q2VYR1N5WJ6K0HDEFGHJKMNPQR', merchant_id: 'mch_7Q2VYR1N5W', out_trade_no: 'ORD20261128000123', amount: 1999,
    currency: 'CNY', amount_captured: 1999, amount_refunded: 0, method: 'balance', channel: 'balance', account_id: 'wallet_buyer_42', scene: 'pc',
    subject: 'Game card 100', buyer: '', metadata: '', notify_url: 'https://shop.example/notify', status: 'succeeded', failure_code: '',
    failure_message: '', hold_amount: 0, hold_expires_at_ms: 0, created_at_ms: now, updated_at_ms: now, version: 1, capture: 'automatic',
    risk_day: 20785, risk_cap_key: '', risk_counted: 0 },
};
const perOp = (f, n) => {
  for (let i = 0; i < n / 5; i++) f();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - t) / n / 1000;
};
console.log(JSON.stringify({ pack: perOp(() => encode(event), 50000), stringify: perOp(() => JSON.stringify(event), 50000), bytes: encode(event).length }));
`;

const variants = [
  { name: 'nothing else loaded', imports: '' },
  { name: 'ioredis loaded', imports: `await import('ioredis');` },
  { name: 'engine/infra.ts loaded (peakpay)', imports: `await import('./engine/infra.ts');` },
];

type Sample = { pack: number; stringify: number; bytes: number };
const best = new Map<string, Sample>();
for (let round = 0; round < ROUNDS; round++) {
  for (const v of variants) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child(v.imports)], { encoding: 'utf8', cwd: PROJECT_ROOT });
    if (r.status !== 0) throw new Error(`${v.name}: ${r.stderr}`);
    const s = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Sample;
    const b = best.get(v.name);
    best.set(v.name, b ? { pack: Math.min(b.pack, s.pack), stringify: Math.min(b.stringify, s.stringify), bytes: s.bytes } : s);
  }
}
console.log(`msgpackr pack of one payment.succeeded event; best of ${ROUNDS} alternating runs; ${cpus().length} cores (${cpus()[0]?.model ?? '?'})`);
console.log('process                              pack µs   JSON.stringify µs   bytes');
for (const v of variants) {
  const s = best.get(v.name) as Sample;
  console.log(`${v.name.padEnd(36)}${s.pack.toFixed(2).padStart(8)}${s.stringify.toFixed(2).padStart(20)}${String(s.bytes).padStart(8)}`);
}
