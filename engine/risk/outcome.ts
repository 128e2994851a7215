// From a risk command (risk.configure, risk.blacklist) and its Lua result to the event to publish
// and the reply. Pure and deterministic like shards/outcome.ts: a replayed result yields the same
// event (its time is the first application's, kept in the op record). No money moves: no postings.
import type { CommandOf } from '../protocol/commands.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import type { EngineEvent } from '../protocol/events.ts';
import { SCRIPT_ERROR_CODE, ScriptCode } from '../redis/errors.ts';
import type { ScriptResult } from '../redis/store.ts';
import { eventId, type Outcome } from '../shards/outcome.ts';

export function riskOutcomeOf(cmd: CommandOf<'risk.configure'> | CommandOf<'risk.blacklist'>, result: ScriptResult, nowMs: number): Outcome {
  if (result.code !== ScriptCode.Ok) {
    const err = SCRIPT_ERROR_CODE[result.code];
    return {
      events: [],
      reply: { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: result.replayed, code: err.code, message: err.message, payment_id: null },
      payment: null,
    };
  }
  if (!result.risk || result.effects.length > 0) throw new Error(`assertion: risk command ${cmd.cmd_id} without its change, or with money effects`);
  const events: EngineEvent[] = result.events.map((type, i) => ({
    v: PROTOCOL_VERSION,
    id: eventId(cmd.cmd_id, i),
    type,
    merchant_id: cmd.merchant_id,
    cmd_id: cmd.cmd_id,
    ts_ms: result.atMs ?? nowMs,
    payment: null,
    account: null,
    postings: [],
    memo: null,
    risk: result.risk,
  }));
  return {
    events,
    reply: { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: true, replayed: result.replayed, payment: null, account: null, risk: result.risk },
    payment: null,
  };
}
