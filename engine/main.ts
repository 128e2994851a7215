import { loadConfigOrExit } from './config.ts';
import { startEngine } from './service.ts';
import { logger, setNiceness, stopOnSignals } from './infra.ts';

const config = loadConfigOrExit();
setNiceness(config.backgroundNice, logger(config, 'engine'));
stopOnSignals(await startEngine(config));
