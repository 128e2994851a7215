// `npm run webhooks`: the merchant webhook dispatcher and deliverer (engine/webhooks/index.ts).
import { loadConfigOrExit } from '../config.ts';
import { startWebhooks } from './index.ts';
import { logger, setNiceness, stopOnSignals } from '../infra.ts';

const config = loadConfigOrExit();
setNiceness(config.backgroundNice, logger(config, 'webhooks'));
stopOnSignals(await startWebhooks(config));
