// buildServer(ctx): the HTTP ingress as a fastify instance, without listen(), so tests use inject().
// Thin by design: authenticate, validate, deduplicate, publish, wait, reply.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { newRequestId } from '../engine/protocol/ids.ts';
import { authenticate } from './auth.ts';
import type { IngressContext } from './context.ts';
import { ApiError, isApiError } from './errors.ts';
import { problemResult, send } from './http.ts';
import { openApiDocument } from './openapi.ts';
import { retryAfterS } from './rate-limit.ts';
import { accountRoutes } from './routes/accounts.ts';
import { notifyRoutes } from './routes/notify.ts';
import { topupRoutes } from './routes/topups.ts';
import { paymentRoutes } from './routes/payments.ts';
import { refundRoutes } from './routes/refunds.ts';

export const BODY_BYTES_MAX = 16 * 1024;
const READY_CACHE_MS = 1_000;
const EMPTY_BODY = Buffer.alloc(0);

export type RegisteredRoute = { method: string; url: string };
const routeTables = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route registered on a server built here (fastify's implicit HEAD routes excluded). */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  const routes = routeTables.get(app);
  if (!routes) throw new Error('assertion: not a server from buildServer');
  return routes;
}

function fastifyErrorToApi(err: FastifyError): ApiError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('request.too_large', `the body must not exceed ${BODY_BYTES_MAX} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('request.unsupported_media_type', 'send the body as application/json');
    default:
      return (err.statusCode ?? 500) < 500 ? new ApiError('validation.failed', err.message) : new ApiError('internal', undefined, { cause: err });
  }
}

export type ServerOptions = { https?: { cert: Buffer; key: Buffer } };

/** Merchant calls: authenticated and rate limited. Channel callbacks carry their own signatures. */
const isMerchantCall = (url: string) => url.startsWith('/v1/') && !url.startsWith('/v1/notify/');

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;
/** JSON is UTF-8 (RFC 8259); a body declared in another charset would be read as something else. */
const isUtf8 = (contentType: string | undefined) => {
  const charset = CHARSET.exec(contentType ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset);
};

export async function buildServer(ctx: IngressContext, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const options = {
    loggerInstance: ctx.log as FastifyBaseLogger,
    // One log line per request costs more CPU than the request itself at peak; 5xx are logged.
    // Every line a request logs carries its id under the name the problem body uses.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit: BODY_BYTES_MAX,
    genReqId: () => newRequestId(),
    requestIdHeader: false as const,
    return503OnClosing: true,
    ...(ctx.config.trustProxy ? { trustProxy: ctx.config.trustProxy } : {}),
    // Errors fastify raises before routing (bad percent-encoding, a path parameter over 100
    // characters) would otherwise be answered in its own JSON shape, without our code or request-id.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      const apiErr = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new ApiError('route.not_found', 'a path segment is longer than 100 characters')
        : new ApiError('validation.failed', 'the URL is not valid', { errors: [{ path: '(url)', message: err.message }] });
      return send(reply, problemResult(apiErr, req.id), { 'request-id': req.id });
    },
  };
  // One type for both: the routes never touch the raw server.
  const app = (opts.https ? Fastify({ ...options, https: opts.https }) : Fastify(options)) as unknown as FastifyInstance;
  // Recorded before any route exists, so routes added later (here or in plugins) are listed too:
  // the OpenAPI test checks each of them is documented.
  const routes: RegisteredRoute[] = [];
  routeTables.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  app.decorateRequest('merchant', null);
  app.decorateRequest('rawBody', null as unknown as Buffer);

  // Only parsers of our own: fastify's default text/plain one would accept a body that never
  // reaches rawBody, so the signature would not cover it (and an empty {} would be validated).
  app.removeAllContentTypeParsers();
  // Keep the raw bytes: the signature and the idempotency fingerprint are over them.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    if (isMerchantCall(req.url) && !isUtf8(req.headers['content-type'])) {
      done(new ApiError('request.unsupported_media_type', 'send the body as application/json in UTF-8'), undefined);
      return;
    }
    req.rawBody = body as Buffer;
    done(null, undefined);
  });

  // Alipay and UnionPay call back with form bodies; only the notify routes take them.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (req, body, done) => {
    if (!req.url.startsWith('/v1/notify/')) {
      done(Object.assign(new Error('form bodies are for channel callbacks only'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }), undefined);
      return;
    }
    req.rawBody = body as Buffer;
    done(null, undefined);
  });

  app.addHook('onRequest', async (req, reply) => {
    req.rawBody = EMPTY_BODY; // replaced by the parser when there is a body
    req.deferredNonce = null;
    reply.header('request-id', req.id);
    // Before the body is read or anything is looked up: a flood from one address costs one EVALSHA each.
    if (isMerchantCall(req.url)) {
      const waitMs = await ctx.rateLimiter.ip(req.ip, req.socket.remoteAddress);
      if (waitMs > 0) {
        ctx.metrics.rateLimited.labels('ip').inc();
        const s = retryAfterS(waitMs);
        throw new ApiError('rate_limited', `too many requests from this address; retry in ${s} s`, { headers: { 'retry-after': String(s) } });
      }
    }
  });
  app.addHook('preHandler', async (req) => {
    // A POST that runs idempotent() checks its nonce with its Idempotency-Key claim: one round-trip.
    const deferNonce = req.method === 'POST' && req.routeOptions.config.claimsNonce === true;
    if (isMerchantCall(req.url)) req.merchant = await authenticate(ctx, req, { deferNonce });
  });
  app.addHook('onResponse', async (req, reply) => {
    // A route marked claimsNonce that answered success without idempotent(): its nonce went unchecked.
    if (req.deferredNonce !== null && reply.statusCode < 400) req.log.error({ route: req.routeOptions.url }, 'assertion: nonce left unchecked');
    const route = req.routeOptions.url ?? 'unmatched';
    ctx.metrics.requests.labels(req.method, route, String(reply.statusCode)).inc();
    ctx.metrics.latency.labels(req.method, route).observe(reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: FastifyError | ApiError, req: FastifyRequest, reply: FastifyReply) => {
    const apiErr = isApiError(err) ? err : fastifyErrorToApi(err);
    if (apiErr.status >= 500) req.log.error({ err: apiErr.cause ?? err }, apiErr.message);
    return send(reply, problemResult(apiErr, req.id), apiErr.headers);
  });
  app.setNotFoundHandler((req, reply) => send(reply, problemResult(new ApiError('route.not_found', `${req.method} ${req.url.split('?')[0]}`), req.id)));

  paymentRoutes(app, ctx);
  refundRoutes(app, ctx);
  accountRoutes(app, ctx);
  topupRoutes(app, ctx);
  notifyRoutes(app, ctx);

  app.get('/healthz', async () => ({ status: 'ok' }));

  let ready: { atMs: number; body: Record<string, boolean> } | null = null;
  app.get('/readyz', async (_req, reply) => {
    if (!ready || Date.now() - ready.atMs > READY_CACHE_MS) ready = { atMs: Date.now(), body: await readiness(ctx) };
    const ok = Object.values(ready.body).every(Boolean);
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks: ready.body });
  });
  app.get('/metrics', async (_req, reply) => reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()));
  const openapi = JSON.stringify(openApiDocument());
  app.get('/openapi.json', async (_req, reply) => reply.type('application/json').send(openapi));
  return app;
}

/** NATS and Redis reachable; every shard consumer has an engine pulling from it. */
async function readiness(ctx: IngressContext): Promise<Record<string, boolean>> {
  const within = <T>(p: Promise<T>, ms = 500) =>
    Promise.race([p.then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  const nats = await within(ctx.nc.flush());
  const redis = await within(ctx.redis.ping());
  let engine = false;
  if (nats) {
    engine = await within(
      (async () => {
        for (let s = 0; s < ctx.names.shardCount; s++) {
          const info = await ctx.jsm.consumers.info(ctx.names.cmdStream, ctx.names.shardConsumer(s));
          if (info.num_waiting === 0 && info.num_ack_pending === 0) throw new Error(`shard ${s} has no engine`);
        }
      })(),
      1_500,
    );
  }
  return { nats, redis, engine };
}
