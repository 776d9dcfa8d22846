import { sql } from './kysely.js';
import { type LetheDb, toNumberOrNull } from './db.js';
import { sqlCall } from './errors.js';

export type RetentionOutcome =
  'requested' | 'already_requested' | 'nothing_to_erase' | 'blocked' | 'unapproved' | 'refused';

export interface RetentionRun {
  policyName: string;
  version: number;
  outcome: RetentionOutcome;
  candidates: number | null;
  held: number | null;
  requestId: string | null;
}

/** pii.enforce_retention: one policy by name, or every enabled one (what the schedule runs). */
export async function enforceRetention(db: LetheDb, name?: string): Promise<RetentionRun[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      policy_name: string;
      version: number;
      outcome: RetentionOutcome;
      candidates: string | null;
      held: string | null;
      request_id: string | null;
    }>`select * from pii.enforce_retention(${name ?? null}::text)`.execute(db);
    return rows.map((r) => ({
      policyName: r.policy_name,
      version: r.version,
      outcome: r.outcome,
      candidates: toNumberOrNull(r.candidates),
      held: toNumberOrNull(r.held),
      requestId: r.request_id,
    }));
  });
}
