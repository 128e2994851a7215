// PEAKPAY_BACKGROUND_NICE: setNiceness lowers every thread of the process (on Linux a niceness is
// per thread), and threads started afterwards (piscina's workers) inherit it; a process leading its
// own session lowers its session's autogroup too, one sharing its parent's session never does.
// Checked in child processes, so that the test runner keeps its own priority.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const child = `
import { Worker } from 'node:worker_threads';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import pino from 'pino';
import { leadsOwnSession, setNiceness } from './engine/infra.ts';
const autogroup = () => (existsSync('/proc/self/autogroup') ? readFileSync('/proc/self/autogroup', 'utf8').trim() : null);
const nices = () => readdirSync('/proc/self/task').map((tid) => {
  const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19: nice
});
const before = nices();
const groupBefore = autogroup();
setNiceness(Number(process.argv.at(-1)), pino({ level: 'silent' }));
const w = new Worker('setTimeout(() => {}, 200)', { eval: true });
await new Promise((r) => w.once('online', r));
console.log(JSON.stringify({ before, after: nices(), leader: leadsOwnSession(), groupBefore, groupAfter: autogroup() }));
await w.terminate();
`;

type Report = { before: number[]; after: number[]; leader: boolean; groupBefore: string | null; groupAfter: string | null };
const args = (nice: number) => ['--import', 'tsx', '--input-type=module', '-e', child, String(nice)];
const parse = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1) as string) as Report;

/** In this process's session, as a service started by a shell is. */
const run = (nice: number): Report => {
  const r = spawnSync(process.execPath, args(nice), { encoding: 'utf8', cwd: process.cwd() });
  expect(r.status, r.stderr).toBe(0);
  return parse(r.stdout);
};

/** Leading a session of its own, as `npm start` and the benchmark start each service. */
const runDetached = (nice: number): Promise<Report> => new Promise((resolve, reject) => {
  const c = spawn(process.execPath, args(nice), { cwd: process.cwd(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  c.once('error', reject);
  c.once('exit', (code) => (code === 0 ? resolve(parse(out)) : reject(new Error(`exit ${code}: ${err}`))));
});

/** "/autogroup-123 nice 5" → 5 */
const groupNice = (line: string | null) => Number(/nice (-?\d+)$/.exec(line ?? '')?.[1]);
const ownGroup = () => (existsSync('/proc/self/autogroup') ? readFileSync('/proc/self/autogroup', 'utf8').trim() : null);
/** The test runner's session, before any child ran: no child sharing it may change it. */
const runnerGroup = ownGroup();

describe.runIf(process.platform === 'linux')('setNiceness', () => {
  it('lowers every thread, and a worker started afterwards inherits it', () => {
    // 19, the lowest priority: allowed from whatever niceness the test runs at.
    const { before, after } = run(19);
    expect(ownGroup()).toBe(runnerGroup);
    expect(before.some((n) => n !== 19)).toBe(true);
    expect(after.length).toBeGreaterThan(before.length); // the worker's thread is among them
    expect(after).toEqual(after.map(() => 19));
  });

  it('leaves the priority alone at 0', () => {
    const { before, after } = run(0);
    expect(new Set(after)).toEqual(new Set(before));
  });

  it('in a session of its own, also lowers the session (autogroup)', async () => {
    const r = await runDetached(19);
    expect(r.leader).toBe(true);
    expect(r.after).toEqual(r.after.map(() => 19));
    if (r.groupBefore === null) return; // a kernel without autogroups: only the threads' niceness exists
    expect(groupNice(r.groupBefore)).toBe(0);
    expect(groupNice(r.groupAfter)).toBe(19);
  });

  it("in its parent's session, leaves the session's niceness alone (it would lower the parent too)", () => {
    const r = run(19);
    expect(r.leader).toBe(false);
    expect(r.after).toEqual(r.after.map(() => 19));
    expect(r.groupAfter).toBe(runnerGroup); // the test runner's own, unchanged
    expect(ownGroup()).toBe(runnerGroup);
  });
});
