// The ingress's front door end to end (ingress/service.ts wires its load reports to its command
// client): while connections pile up in its real accept queue, a payment is answered 202
// `processing` as soon as JetStream holds it, and once the queue has drained, answers wait for the
// engine's decision again. The engine does not yield here (the setting is off): only the ingress acts.
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BEHIND_RECENT_MS } from '../../engine/shards/intake.ts';
import { acceptQueueDepth } from '../../ingress/load-report.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';

const QUEUE = 20;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ config: testConfig({ PEAKPAY_INGRESS_FRONT_DOOR_QUEUE: String(QUEUE) }) });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await h.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frontDoorAccepts = async (): Promise<number> => (await h.ingress.ctx.metrics.frontDoorAccepts.get()).values[0]?.value ?? 0;

describe('the front door', () => {
  it('answers at the PubAck while the accept queue is deep, and waits for decisions once it has drained', async () => {
    const merchant = await h.newMerchant();
    const account = uniqueId('acc');
    expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: account, currency: 'CNY' })).statusCode).toBe(201);
    await creditAccount(h.ingress.ctx.client, merchant.id, account, 1_000_000, 'CNY', 'float');
    const pay = () => h.call(merchant, 'POST', '/v1/payments', {
      out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: account, scene: 'pc',
    });
    const before = await pay();
    expect(before.statusCode).toBe(201);
    expect(await frontDoorAccepts()).toBe(0);

    // A client opens twice the threshold's connections while this event loop (the ingress's) is
    // held: the kernel completes them, nobody accepts them. When the loop turns again, the overdue
    // load report runs (timers) before the first accept (poll) and finds the queue deep.
    const { port } = h.app.server.address() as AddressInfo;
    const code = `const net=require('net');for(let i=0;i<${QUEUE * 2};i++)net.connect(${port},'127.0.0.1').on('error',()=>{});setInterval(()=>{},1e3)`;
    const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    try {
      const held = Date.now() + 10_000;
      while ((acceptQueueDepth(port, false) ?? 0) < QUEUE * 2 && Date.now() < held) { /* hold the event loop */ }
      expect(acceptQueueDepth(port, false)).toBe(QUEUE * 2);
      await sleep(150);
      const during = await pay();
      expect(during.statusCode).toBe(202);
      expect(during.json().status).toBe('processing');
      expect(await frontDoorAccepts()).toBe(1);
      // Stored before the 202: the engine decides it all the same.
      const id = during.json().id as string;
      const deadline = Date.now() + 5_000;
      while ((await h.call(merchant, 'GET', `/v1/payments/${id}`)).json().status !== 'succeeded' && Date.now() < deadline) await sleep(50);
      expect((await h.call(merchant, 'GET', `/v1/payments/${id}`)).json().status).toBe('succeeded');
    } finally {
      child.kill('SIGKILL');
    }
    // Accepted meanwhile (the queue is empty again), and BEHIND_RECENT_MS later the door is back to normal.
    await sleep(BEHIND_RECENT_MS + 300);
    const after = await pay();
    expect(after.statusCode).toBe(201);
    expect(await frontDoorAccepts()).toBe(1);
  });
});
