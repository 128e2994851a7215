// Starts the whole pipeline in-process for a test file: engine, settlement consumer and ingress
// (fastify inject, no port), on the real NATS, Redis and Postgres, in a fresh namespace.
import { createServer as createNetServer } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Config } from '../engine/config.ts';
import { connectNats, pgPool } from '../engine/infra.ts';
import { createMerchant } from '../engine/merchants/index.ts';
import { names } from '../engine/protocol/subjects.ts';
import { startEngine, type EngineOptions } from '../engine/service.ts';
import { startSettlement } from '../engine/settlement/consumer.ts';
import { startIngress } from '../ingress/service.ts';
import type { ChannelSettings } from '../engine/channels/settings.ts';
import { authorization } from '../ingress/signature.ts';
import { dropStreams, testConfig, uniqueId } from './helpers.ts';

export type Harness = Awaited<ReturnType<typeof startHarness>>;

export async function startHarness(opts: { config?: Config; engine?: EngineOptions | false; settlement?: boolean; channels?: ChannelSettings } = {}) {
  const config = opts.config ?? testConfig();
  const pool = pgPool(config, 4);
  const engine = opts.engine === false ? null : await startEngine(config, { ...(opts.channels && { channels: opts.channels }), ...opts.engine });
  const settlement = opts.settlement === false ? null : await startSettlement(config, { pool });
  const ingress = await startIngress(config, { pool, listen: false, ...(opts.channels && { channels: opts.channels }) });
  const nc = await connectNats(config, 'test');
  const jsm = await jetstreamManager(nc);
  const n = names(config.namespace, config.shardCount);

  async function newMerchant(opts: { paymentAmountMax?: number } = {}) {
    return createMerchant(pool, config.masterKey, { id: uniqueId('m'), name: 'test shop', ...opts });
  }

  /** A signed request through the real ingress (inject): what a storefront would send. */
  async function call(
    app: FastifyInstance,
    m: { id: string; secret: string },
    method: 'GET' | 'POST',
    url: string,
    body?: unknown,
    headers: Record<string, string | undefined> = {},
  ): Promise<LightMyRequestResponse> {
    const raw = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const all: Record<string, string | undefined> = {
      ...(raw === '' ? {} : { 'content-type': 'application/json' }),
      ...(method === 'POST' ? { 'idempotency-key': uniqueId('idem') } : {}),
      authorization: authorization(m.id, m.secret, method, url, raw),
      ...headers,
    };
    return app.inject({
      method,
      url,
      payload: raw === '' ? undefined : raw,
      headers: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string>,
    });
  }

  async function streamMessages(stream: 'cmd' | 'evt'): Promise<number> {
    const info = await jsm.streams.info(stream === 'cmd' ? n.cmdStream : n.evtStream);
    return info.state.messages;
  }

  return {
    config,
    pool,
    engine,
    settlement,
    ingress,
    app: ingress.app,
    names: n,
    newMerchant,
    call: (m: { id: string; secret: string }, method: 'GET' | 'POST', url: string, body?: unknown, headers?: Record<string, string | undefined>) =>
      call(ingress.app, m, method, url, body, headers),
    streamMessages,
    async stop() {
      await ingress.stop();
      await settlement?.stop();
      await engine?.stop();
      await nc.close();
      await dropStreams(config);
      await pool.end();
    },
  };
}

/** A free loopback port (asked of the OS, then released) for a server that must be known in advance. */
export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * The harness with channels, its ingress listening on a real loopback port so channel sandboxes
 * can call back: settingsFor gets the public URL (<url>/v1/notify/<channel>) to put in the settings.
 */
export async function startChannelHarness(settingsFor: (publicUrl: string) => ChannelSettings, config?: Config): Promise<Harness> {
  const port = await freePort();
  const h = await startHarness({ ...(config && { config }), channels: settingsFor(`http://127.0.0.1:${port}`) });
  await h.app.listen({ host: '127.0.0.1', port });
  return h;
}

