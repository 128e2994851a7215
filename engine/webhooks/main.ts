// `npm run webhooks`: the merchant webhook dispatcher and deliverer (engine/webhooks/index.ts).
import { loadConfigOrExit } from '../config.ts';
import { startWebhooks } from './index.ts';

const STOP_MS_MAX = 20_000;
const config = loadConfigOrExit();
const webhooks = await startWebhooks(config);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    // Bounded: a stop that hangs (a server gone away) must not keep the process alive.
    setTimeout(() => process.exit(1), STOP_MS_MAX).unref();
    webhooks.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
}
