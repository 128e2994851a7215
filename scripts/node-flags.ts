// Node/V8 flags every peakpay process is started with: by `npm start` (scripts/start.ts) and by
// the benchmarks (loadtest/lib/procs.ts, bench-engine, bench-http), so that what is measured is
// what runs; package.json's `npm run ingress`, `engine`, `settlement`, `webhooks` and `bench` spell
// them out (test/unit/node-flags.test.ts keeps them equal). A deployment that starts the processes
// itself passes the same flags (docs/OPERATIONS.md, "Servers on a small machine").
//
// --min-semi-space-size=16: V8 starts each semi-space of the young generation at 1 MB and grows it
// only while many objects survive a scavenge. A server's per-request garbage dies young, so it
// stayed at 1–4 MB and V8 scavenged every few hundred requests, each time walking the roots
// (handles of every socket, timers, remembered sets) again. Starting at 16 MB (growing to 32):
// five alternating uniform pairs, 1,956 → 2,140 payments/s on average, every pair in favour;
// ingress 229 → 201 µs a payment, engine 160 → 147 (docs/BENCHMARKS.md, session 17). The price is
// up to ~64 MB more memory per process. `--max-semi-space-size` alone changes nothing (V8 never
// grows there for this garbage), and Node refuses `--min-semi-space-size` in NODE_OPTIONS, hence
// a flag on the command line.
export const NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--max-semi-space-size=32'];
