// /v1/accounts: wallet accounts (agents' and buyers' prepaid balances).
import type { FastifyInstance } from 'fastify';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { SAFE_ID } from '../../engine/protocol/ids.ts';
import { ApiError, isErrorCode } from '../errors.ts';
import type { IngressContext } from '../context.ts';
import { errorResult, idempotent, jsonResult, parseBody, send } from '../http.ts';
import { createAccountBody } from '../schemas.ts';
import { countUndecided } from '../metrics.ts';

export function accountRoutes(app: FastifyInstance, ctx: IngressContext): void {
  app.post('/v1/accounts', { config: { claimsNonce: true } }, async (req, reply) => {
    const merchant = req.merchant;
    if (!merchant) throw new Error('assertion: unauthenticated');
    const body = parseBody(req, createAccountBody);
    return idempotent(ctx, req, reply, merchant, async ({ cmdId }) => {
      const sent = await ctx.client.send(
        { v: PROTOCOL_VERSION, type: 'account.create', cmd_id: cmdId, merchant_id: merchant.id, ts_ms: Date.now(), ...body },
        ctx.config.ingressDeadlineMs,
        // No 202 form for an account: wait for the decision even while the shard lags.
        { waitThroughBacklog: true },
      );
      if (sent.kind !== 'reply') {
        // A retry of a command JetStream already holds is deduplicated and gets no reply of its
        // own, so what the first attempt did is read back instead of waiting for an answer.
        countUndecided(ctx.metrics, sent);
        const account = await ctx.store.readAccount(merchant.id, body.account_id);
        if (!account) throw new ApiError('engine.unavailable', 'the engine did not answer in time; retry with the same key');
        if (account.currency !== body.currency) return errorResult('account.exists', `account ${body.account_id} exists in ${account.currency}`, req.id);
        return jsonResult(201, account, { location: `/v1/accounts/${account.account_id}` });
      }
      const r = sent.reply;
      if (r.ok && r.account) return jsonResult(201, r.account, { location: `/v1/accounts/${r.account.account_id}` });
      if (r.ok) throw new Error('assertion: account.create replied without an account');
      return errorResult(isErrorCode(r.code) ? r.code : 'internal', r.message, req.id);
    });
  });

  app.get('/v1/accounts/:id', async (req, reply) => {
    const merchant = req.merchant;
    if (!merchant) throw new Error('assertion: unauthenticated');
    const { id } = req.params as { id: string };
    const account = SAFE_ID.test(id) ? await ctx.store.readAccount(merchant.id, id) : null;
    if (!account) throw new ApiError('account.not_found', `no account ${id}`);
    return send(reply, jsonResult(200, account));
  });
}
