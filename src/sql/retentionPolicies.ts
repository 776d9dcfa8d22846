import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';
import type { RetentionOutcome } from './enforceRetention.js';
import type { ErasureMode } from './requestErasure.js';
import type { RetentionSchedule } from './setRetentionPolicy.js';

export interface RetentionPolicy {
  policyName: string;
  version: number;
  subjectQuery: string;
  maxSubjects: number;
  mode: ErasureMode;
  schedule: RetentionSchedule;
  enabled: boolean;
  approved: boolean;
  definedBy: string;
  approvedBy: string | null;
  lastRunAt: Date | null;
  lastOutcome: RetentionOutcome | null;
}

/** pii.retention_policies: each policy's current version. */
export async function retentionPolicies(db: LetheDb): Promise<RetentionPolicy[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      policy_name: string;
      version: number;
      subject_query: string;
      max_subjects: number;
      mode: ErasureMode;
      schedule: RetentionSchedule;
      enabled: boolean;
      approved: boolean;
      defined_by: string;
      approved_by: string | null;
      last_run_at: Date | null;
      last_outcome: RetentionOutcome | null;
    }>`select * from pii.retention_policies order by policy_name`.execute(db);
    return rows.map((r) => ({
      policyName: r.policy_name,
      version: r.version,
      subjectQuery: r.subject_query,
      maxSubjects: r.max_subjects,
      mode: r.mode,
      schedule: r.schedule,
      enabled: r.enabled,
      approved: r.approved,
      definedBy: r.defined_by,
      approvedBy: r.approved_by,
      lastRunAt: r.last_run_at,
      lastOutcome: r.last_outcome,
    }));
  });
}
