// `npm run webhooks`: the merchant webhook dispatcher and deliverer (engine/webhooks/index.ts).
import { loadConfigOrExit } from '../config.ts';
import { startWebhooks } from './index.ts';
import { stopOnSignals } from '../infra.ts';

const config = loadConfigOrExit();
stopOnSignals(await startWebhooks(config));
