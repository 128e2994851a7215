// Summarises V8 CPU profiles (node --cpu-prof; `npm run bench -- --profile DIR` writes one per
// engine and ingress process): self time by function and by where the code lives (a package in
// node_modules, a project file, node's internals, the garbage collector, idle).
//   npx tsx loadtest/profile-summary.ts DIR/engine/*.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });

/** Where a frame's code lives: "(gc)", "node:internal", "pkg:<name>", or a project path. */
export function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node:internal';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `pkg:${nm[1]}`;
  const project = /\/work\/main\/(.+)$/.exec(url.replace(/^file:\/\//, ''));
  return project ? (project[1] as string) : url;
}

for (const file of positionals) {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  prof.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const totalUs = prof.endTime - prof.startTime;
  const fns = new Map<string, number>();
  const places = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const place = placeOf(f.url, f.functionName);
    const fn = `${f.functionName || '(anonymous)'}  ${place}${f.url && !place.startsWith('(') ? `:${f.lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    places.set(place, (places.get(place) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%`;
  const busy = totalUs - (places.get('(idle)') ?? 0);
  console.log(`\n${file}: ${(totalUs / 1e6).toFixed(1)} s profiled, ${pct(busy)} busy`);
  console.log('  by place (self time)');
  for (const [p, us] of [...places].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`    ${pct(us)}  ${p}`);
  console.log('  top functions (self time)');
  for (const [f, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`    ${pct(us)}  ${f}`);
}
