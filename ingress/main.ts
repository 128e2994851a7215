import { loadConfigOrExit } from '../engine/config.ts';
import { startIngress } from './service.ts';

const STOP_MS_MAX = 20_000;
const config = loadConfigOrExit();
const ingress = await startIngress(config);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    // Bounded: a stop that hangs (a server gone away) must not keep the process alive.
    setTimeout(() => process.exit(1), STOP_MS_MAX).unref();
    ingress.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
}
