// msgpack on the wire (msgpackr). Plain maps, no records extension, so any msgpack reader can
// decode our messages. Decoding validates against the zod schema: a message of an unknown
// version or shape is a ProtocolError, never a half-understood command.
import { Packr } from 'msgpackr';
import type { z } from 'zod';
import { commandBatchSchema, commandSchema, type Command } from './commands.ts';
import { eventBatchSchema, eventSchema, replyBatchSchema, replySchema, type EngineEvent, type EventBatch, type Reply } from './events.ts';

const packr = new Packr({ useRecords: false, int64AsType: 'number', mapsAsObjects: true });

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isProtocolError = (err: unknown): err is ProtocolError => err instanceof ProtocolError;

export const encode = (value: unknown): Uint8Array => packr.pack(value);

function decodeWith<S extends z.ZodType>(schema: S, what: string, bytes: Uint8Array): z.infer<S> {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (cause) {
    throw new ProtocolError(`${what}: not msgpack`, { cause });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new ProtocolError(`${what}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

export const decodeCommand = (bytes: Uint8Array): Command => decodeWith(commandSchema, 'command', bytes);

/** One entry per command of a batch: the command, or why it was refused (its neighbours stand). */
export type BatchEntry = { reply: string; cmd: Command; error: null } | { reply: string; cmd: null; error: string };
/** The valid commands of a message of the command stream, single or batch (tools that read the log). */
export function commandsOfMessage(bytes: Uint8Array, isBatch: boolean): Command[] {
  if (!isBatch) return [decodeCommand(bytes)];
  return decodeCommandBatch(bytes).flatMap((e) => (e.cmd ? [e.cmd] : []));
}

/** A CommandBatch message: ProtocolError when the envelope itself is unreadable (no command can be answered). */
export function decodeCommandBatch(bytes: Uint8Array): BatchEntry[] {
  const batch = decodeWith(commandBatchSchema, 'command batch', bytes);
  return batch.cmds.map((raw, i) => {
    const reply = batch.replies[i] as string;
    const parsed = commandSchema.safeParse(raw);
    if (parsed.success) return { reply, cmd: parsed.data, error: null };
    return { reply, cmd: null, error: `command: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}` };
  });
}
export const decodeEvent = (bytes: Uint8Array): EngineEvent => decodeWith(eventSchema, 'event', bytes);
export const decodeEventBatch = (bytes: Uint8Array): EventBatch => decodeWith(eventBatchSchema, 'event batch', bytes);
export const decodeReply = (bytes: Uint8Array): Reply => decodeWith(replySchema, 'reply', bytes);
/** A ReplyBatch: each reply validated on its own (null when it does not validate: its sender answers 202). */
export function decodeReplyBatch(bytes: Uint8Array): Array<{ token: string; reply: Reply | null }> {
  const batch = decodeWith(replyBatchSchema, 'reply batch', bytes);
  return batch.tokens.map((token, i) => {
    const parsed = replySchema.safeParse(batch.replies[i]);
    return { token, reply: parsed.success ? parsed.data : null };
  });
}
/** Raw msgpack without validation: for Lua results, which the caller validates itself. */
export const unpackRaw = (bytes: Uint8Array): unknown => packr.unpack(bytes);
