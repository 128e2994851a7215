import { loadConfigOrExit } from './config.ts';
import { startEngine } from './service.ts';

const config = loadConfigOrExit();
const engine = await startEngine(config);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void engine.stop().then(() => process.exit(0));
  });
}
