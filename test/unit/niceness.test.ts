// PEAKPAY_BACKGROUND_NICE: setNiceness lowers every thread of the process (on Linux a niceness is
// per thread), and threads started afterwards (piscina's workers) inherit it. Checked in a child
// process, so that the test runner keeps its own priority.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const child = `
import { Worker } from 'node:worker_threads';
import { readdirSync, readFileSync } from 'node:fs';
import pino from 'pino';
import { setNiceness } from './engine/infra.ts';
const nices = () => readdirSync('/proc/self/task').map((tid) => {
  const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19: nice
});
const before = nices();
setNiceness(Number(process.argv.at(-1)), pino({ level: 'silent' }));
const w = new Worker('setTimeout(() => {}, 200)', { eval: true });
await new Promise((r) => w.once('online', r));
console.log(JSON.stringify({ before, after: nices() }));
await w.terminate();
`;

const run = (nice: number) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child, String(nice)], { encoding: 'utf8', cwd: process.cwd() });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { before: number[]; after: number[] };
};

describe.runIf(process.platform === 'linux')('setNiceness', () => {
  it('lowers every thread, and a worker started afterwards inherits it', () => {
    // 19, the lowest priority: allowed from whatever niceness the test runs at.
    const { before, after } = run(19);
    expect(before.some((n) => n !== 19)).toBe(true);
    expect(after.length).toBeGreaterThan(before.length); // the worker's thread is among them
    expect(after).toEqual(after.map(() => 19));
  });

  it('leaves the priority alone at 0', () => {
    const { before, after } = run(0);
    expect(new Set(after)).toEqual(new Set(before));
  });
});
