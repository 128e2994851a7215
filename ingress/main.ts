import { loadConfigOrExit } from '../engine/config.ts';
import { startIngress } from './service.ts';

const config = loadConfigOrExit();
const ingress = await startIngress(config);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void ingress.stop().then(() => process.exit(0));
  });
}
