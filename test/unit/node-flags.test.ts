// scripts/node-flags.ts: every process npm start and the benchmarks start gets these flags, and
// package.json's process scripts (`npm run ingress` …) spell them out (JSON cannot import them). This
// Node must accept them (else nothing starts) and they must do what the file says: a young
// generation of 16 MB a semi-space from the start, where V8's default starts at 1 MB.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../scripts/node-flags.ts';

const MB = 1024 * 1024;
const probe = `
const v8 = require('node:v8');
const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
console.log(JSON.stringify({ newSpaceBytes: s.space_size }));
`;

function newSpaceBytes(flags: readonly string[]): number {
  const r = spawnSync(process.execPath, [...flags, '-e', probe], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout.trim()) as { newSpaceBytes: number }).newSpaceBytes;
}

describe('NODE_FLAGS', () => {
  it('start the young generation at 16 MB a semi-space, where the default starts smaller', () => {
    expect(NODE_FLAGS).toContain('--min-semi-space-size=16');
    const tuned = newSpaceBytes(NODE_FLAGS);
    const plain = newSpaceBytes([]);
    expect(tuned).toBeGreaterThanOrEqual(16 * MB);
    expect(plain).toBeLessThan(tuned);
  });
});

describe('package.json', () => {
  it('starts each process script and the benchmark with NODE_FLAGS', () => {
    const scripts = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['ingress', 'engine', 'settlement', 'webhooks', 'bench']) {
      expect(scripts[name], name).toMatch(new RegExp(`^tsx ${NODE_FLAGS.join(' ')} \\S+\\.ts$`));
    }
  });
});
