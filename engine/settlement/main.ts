import { loadConfigOrExit } from '../config.ts';
import { startSettlement } from './consumer.ts';
import { logger, setNiceness, stopOnSignals } from '../infra.ts';

const config = loadConfigOrExit();
setNiceness(config.backgroundNice, logger(config, 'settlement'));
stopOnSignals(await startSettlement(config));
