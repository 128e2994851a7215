import { loadConfigOrExit } from '../engine/config.ts';
import { startIngress } from './service.ts';
import { stopOnSignals } from '../engine/infra.ts';

const config = loadConfigOrExit();
stopOnSignals(await startIngress(config));
