// Risk metrics from a completed command's outcome. Pure apart from the counters it increments, so
// the runner calls it once per command in complete() and tests call it on any outcome.
// A replayed result is not counted again: it is the same decision, answered twice.
import type { EngineMetrics } from '../metrics.ts';
import type { Outcome } from '../shards/outcome.ts';
import { isRiskRefusalReason, RISK_CHALLENGE_REASONS } from './rules.ts';

export type RiskCounters = Pick<EngineMetrics, 'riskRefusals' | 'riskChallenges'>;

/** What the outcome means for risk: a refusal reason, a challenge reason, or null. */
export function riskDecisionOf(o: Outcome): { refused: string } | { challenged: string } | null {
  if (!o.reply.ok || o.reply.replayed) return null;
  // The payment after the command (its events carry it on the last one only).
  const code = o.payment?.failure?.code;
  for (const ev of o.events) {
    if (ev.type === 'payment.failed' && code !== undefined && isRiskRefusalReason(code)) return { refused: code };
    // The only challenge today is unusual hours; a second one would carry its reason on the payment.
    if (ev.type === 'payment.requires_action') return { challenged: RISK_CHALLENGE_REASONS[0] };
  }
  return null;
}

export function observeRisk(metrics: RiskCounters, o: Outcome): void {
  const d = riskDecisionOf(o);
  if (d === null) return;
  if ('refused' in d) metrics.riskRefusals.labels(d.refused).inc();
  else metrics.riskChallenges.labels(d.challenged).inc();
}
