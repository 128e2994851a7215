// What belongs in piscina worker threads? Measures, side by side in one run, the CPU cost of each
// per-payment operation on the event loop, and the same work sent to a piscina pool (one task per
// operation, and batches of 64), with 1 and 2 threads.
//
//   npm run bench:workers
//
// Decision rule: an operation is worth a thread hop only if it costs clearly more than the hop.
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { decodeCommand, encode } from '../engine/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../engine/protocol/commands.ts';
import { CryptoPool } from '../engine/workers/pool.ts';
import { runTask, type CryptoTask } from '../engine/workers/tasks.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const body = JSON.stringify({ out_trade_no: 'T20261111000001', amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_42', capture: 'manual', scene: 'pc', subject: 'Game card 100', buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' } });
const wechatSignString = `POST\n/v3/pay/transactions/native\n1764300000\n5K8264ILTKCH16CQ\n${body}\n`;
const signature = runTask({ op: 'rsaSign', keyPem, data: wechatSignString }) as string;
const aesKey = randomBytes(32).toString('hex');
const blob = runTask({ op: 'aesGcmEncrypt', keyHex: aesKey, plaintext: '13800138000', aad: 'm_1' }) as string;
const cmdBytes = encode({
  v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: 'cmd_1', merchant_id: 'm_1', ts_ms: 1764300000000, payment_id: 'pay_1', out_trade_no: 'T1',
  amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_42', capture: 'manual', hold_ttl_s: 900, scene: 'pc',
});

type Op = { name: string; inline: () => unknown; task: CryptoTask | null };
const ops: Op[] = [
  { name: 'HMAC-SHA256 request signature (ingress)', inline: () => createHmac('sha256', 'sk_test').update(body).digest('hex'), task: null },
  { name: 'msgpack decode + zod validate a command', inline: () => decodeCommand(cmdBytes), task: null },
  { name: 'AES-256-GCM encrypt a phone number', inline: () => runTask({ op: 'aesGcmEncrypt', keyHex: aesKey, plaintext: '13800138000', aad: 'm_1' }), task: { op: 'aesGcmEncrypt', keyHex: aesKey, plaintext: '13800138000', aad: 'm_1' } },
  { name: 'AES-256-GCM decrypt (WeChat notify resource)', inline: () => runTask({ op: 'aesGcmDecrypt', keyHex: aesKey, blobB64: blob, aad: 'm_1' }), task: { op: 'aesGcmDecrypt', keyHex: aesKey, blobB64: blob, aad: 'm_1' } },
  { name: 'RSA-2048 verify (channel callback)', inline: () => runTask({ op: 'rsaVerify', keyPem: pubPem, data: wechatSignString, signatureB64: signature }), task: { op: 'rsaVerify', keyPem: pubPem, data: wechatSignString, signatureB64: signature } },
  { name: 'RSA-2048 sign (WeChat v3 / Alipay RSA2 request)', inline: () => runTask({ op: 'rsaSign', keyPem, data: wechatSignString }), task: { op: 'rsaSign', keyPem, data: wechatSignString } },
];

const BUDGET_MS = 1500;

function inlineRate(fn: () => unknown): number {
  for (let i = 0; i < 200; i++) fn(); // warm up
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < BUDGET_MS) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
  }
  return n / ((performance.now() - t0) / 1000);
}

async function poolRate(pool: CryptoPool, task: CryptoTask, batch: number): Promise<number> {
  const inFlight = 64;
  const once = () => (batch === 1 ? pool.run(task) : pool.runBatch(Array.from({ length: batch }, () => task)));
  await Promise.all(Array.from({ length: 8 }, once)); // warm up
  const t0 = performance.now();
  let n = 0;
  const worker = async () => {
    while (performance.now() - t0 < BUDGET_MS) {
      await once();
      n += batch;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return n / ((performance.now() - t0) / 1000);
}

const fmt = (r: number) => (r >= 10_000 ? `${Math.round(r / 1000)}k` : String(Math.round(r))).padStart(9);
const us = (r: number) => `${(1e6 / r).toFixed(1)} µs`.padStart(11);

console.log(`per-operation rates, ops/s (${cpus().length} cores, ${cpus()[0]?.model ?? '?'}; ${BUDGET_MS} ms each)`);
console.log('operation                                          inline   cost/op   pool1x1  pool1x64  pool2x1  pool2x64');
const pools = [new CryptoPool({ threads: 1 }), new CryptoPool({ threads: 2 })];
for (const op of ops) {
  const inline = inlineRate(op.inline);
  const cells: string[] = [];
  for (const pool of pools) {
    for (const batch of [1, 64]) cells.push(op.task ? fmt(await poolRate(pool, op.task, batch)) : '        -');
  }
  console.log(`${op.name.padEnd(48)}${fmt(inline)}${us(inline)}${cells.join('')}`);
}
await Promise.all(pools.map((p) => p.destroy()));
