// Publishes many commands to JetStream with at most `window` PubAcks outstanding: for operators'
// bulk jobs, load generators and tests. Each command's cmd_id is its Nats-Msg-Id.
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { encode } from '../protocol/codec.ts';
import type { Command } from '../protocol/commands.ts';
import type { Names } from '../protocol/subjects.ts';

export const PUBLISH_WINDOW_DEFAULT = 256;

export async function publishAll(nc: NatsConnection, n: Names, cmds: readonly Command[], window = PUBLISH_WINDOW_DEFAULT): Promise<void> {
  const js = jetstream(nc);
  let next = 0;
  const worker = async () => {
    while (next < cmds.length) {
      const cmd = cmds[next++] as Command;
      await js.publish(n.cmdSubject(cmd.merchant_id), encode(cmd), { msgID: cmd.cmd_id });
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, Math.max(1, cmds.length)) }, worker));
}
