// ioredis puts String.prototype into V8's dictionary mode when it loads (its RESP3 decoder defines a
// subclass of String), which makes every string method call slower; engine/infra.ts, which every
// process imports, restores it. Checked in child processes with V8's own %HasFastProperties (what
// it costs: npm run bench:codec).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const probe = (imports: string) => `
${imports}
const fast = new Function('o', 'return %HasFastProperties(o)');
console.log(JSON.stringify({ string: fast(String.prototype), object: fast(Object.prototype) }));
`;

const run = (imports: string) => {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', probe(imports)], {
    encoding: 'utf8', cwd: process.cwd(),
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { string: boolean; object: boolean };
};

describe('String.prototype after ioredis', () => {
  it('ioredis alone leaves it in dictionary mode (the day it stops, restoreStringPrototypeFastMode can go)', () => {
    expect(run(`await import('ioredis');`)).toEqual({ string: false, object: true });
  });

  it('engine/infra.ts, which loads ioredis, leaves it in fast mode; so do the entry points of every process', () => {
    expect(run(`await import('./engine/infra.ts');`)).toEqual({ string: true, object: true });
    const everything = ['./engine/service.ts', './ingress/service.ts', './engine/settlement/consumer.ts', './engine/webhooks/index.ts', './scripts/ops.ts'];
    expect(run(everything.map((m) => `await import('${m}');`).join('\n'))).toEqual({ string: true, object: true });
  });
});
