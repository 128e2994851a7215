/** Header carrying the core-NATS subject on which the sender waits for the engine's reply. */
export const REPLY_HEADER = 'Pp-Reply';
