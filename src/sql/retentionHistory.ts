import { sql } from './kysely.js';
import { type LetheDb, toNumberOrNull } from './db.js';
import { sqlCall } from './errors.js';
import type { RetentionRun } from './enforceRetention.js';

export interface RetentionHistoryRow extends RetentionRun {
  at: Date;
  periodStart: Date;
  runBy: string;
  maxSubjects: number | null;
}

/** pii.retention_history, newest first (one policy, or all). */
export async function retentionHistory(db: LetheDb, name?: string, limit = 100): Promise<RetentionHistoryRow[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      at: Date;
      policy_name: string;
      version: number;
      period_start: Date;
      run_by: string;
      candidates: string | null;
      held: string | null;
      outcome: RetentionRun['outcome'];
      request_id: string | null;
      max_subjects: number | null;
    }>`select * from pii.retention_history
       where ${name ?? null}::text is null or policy_name = ${name ?? null}::text
       order by id desc limit ${limit}::integer`.execute(db);
    return rows.map((r) => ({
      at: r.at,
      policyName: r.policy_name,
      version: r.version,
      periodStart: r.period_start,
      runBy: r.run_by,
      candidates: toNumberOrNull(r.candidates),
      held: toNumberOrNull(r.held),
      outcome: r.outcome,
      requestId: r.request_id,
      maxSubjects: r.max_subjects,
    }));
  });
}
