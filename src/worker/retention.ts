// Scheduled tasks (graphile-worker crontab, no pg_cron): lethe_enforce_retention runs
// every enabled policy (each at most once per its period; idempotent, so a backfilled or
// repeated run files nothing twice) and lethe_hold_tick sends legal-hold expiry notices.
import type { Task } from 'graphile-worker';
import type { LetheDb } from '../sql/db.js';
import { enforceRetention } from '../sql/enforceRetention.js';
import { holdTick } from '../sql/holdTick.js';

export const ENFORCE_RETENTION_TASK = 'lethe_enforce_retention';
export const HOLD_TICK_TASK = 'lethe_hold_tick';

/** Hourly retention (policies have hourly to monthly periods) and a daily hold check; fill catches up after downtime. */
export const LETHE_CRONTAB = [
  `0 * * * * ${ENFORCE_RETENTION_TASK} ?fill=1h&max=3&jobKey=lethe:enforce_retention`,
  `30 0 * * * ${HOLD_TICK_TASK} ?fill=1d&max=3&jobKey=lethe:hold_tick`,
].join('\n');

export function enforceRetentionTask(db: LetheDb): Task {
  return async (_payload, helpers) => {
    for (const run of await enforceRetention(db)) {
      const counts = run.candidates === null ? '' : ` (${run.candidates} candidate(s), ${run.held} held)`;
      const log =
        run.outcome === 'blocked' || run.outcome === 'unapproved' || run.outcome === 'refused'
          ? helpers.logger.warn
          : helpers.logger.info;
      log.call(
        helpers.logger,
        `retention ${run.policyName} v${run.version}: ${run.outcome}${counts}${run.requestId ? ` request ${run.requestId}` : ''}`,
      );
    }
  };
}

export function holdTickTask(db: LetheDb): Task {
  return async (_payload, helpers) => {
    for (const n of await holdTick(db)) {
      helpers.logger.info(
        `legal hold ${n.holdId}: ${n.notice}${n.daysLeft === null ? '' : ` (${n.daysLeft} day(s) left)`}`,
      );
    }
  };
}
