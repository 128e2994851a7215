/**
 * Header carrying the core-NATS subject on which the sender waits for the engine's reply; on a
 * command batch, the prefix of the reply subjects (`<prefix>.<token>`).
 */
export const REPLY_HEADER = 'Pp-Reply';
/** Present (value: the number of commands) on a message that carries a CommandBatch. */
export const BATCH_HEADER = 'Pp-Batch';
