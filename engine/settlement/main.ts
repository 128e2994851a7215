import { loadConfigOrExit } from '../config.ts';
import { startSettlement } from './consumer.ts';
import { stopOnSignals } from '../infra.ts';

const config = loadConfigOrExit();
stopOnSignals(await startSettlement(config));
