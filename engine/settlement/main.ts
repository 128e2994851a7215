import { loadConfigOrExit } from '../config.ts';
import { startSettlement } from './consumer.ts';

const config = loadConfigOrExit();
const settlement = await startSettlement(config);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void settlement.stop().then(() => process.exit(0));
  });
}
