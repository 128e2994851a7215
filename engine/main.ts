import { loadConfigOrExit } from './config.ts';
import { startEngine } from './service.ts';
import { stopOnSignals } from './infra.ts';

const config = loadConfigOrExit();
stopOnSignals(await startEngine(config));
