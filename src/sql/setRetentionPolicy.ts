import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';
import type { ErasureMode } from './requestErasure.js';

export type RetentionSchedule = 'hourly' | 'daily' | 'weekly' | 'monthly';

export interface RetentionPolicyOptions {
  kind?: string;
  mode?: ErasureMode;
  /** One request per period of this length (UTC); the worker checks hourly. Default daily. */
  schedule?: RetentionSchedule;
  /** On the worker's schedule. Default false. */
  enabled?: boolean;
}

/**
 * pii.set_retention_policy: validates the query with the caller's rights (read-only) and
 * records a new version when something changed; returns the current version.
 */
export async function setRetentionPolicy(
  db: LetheDb,
  name: string,
  subjectQuery: string,
  maxSubjects: number,
  opts: RetentionPolicyOptions = {},
): Promise<number> {
  const args = namedArgs([
    ['name', name, 'text'],
    ['subject_query', subjectQuery, 'text'],
    ['max_subjects', maxSubjects, 'integer'],
    ['kind', opts.kind, 'text'],
    ['mode', opts.mode, 'text'],
    ['schedule', opts.schedule, 'text'],
    ['enabled', opts.enabled, 'boolean'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ version: number }>`select pii.set_retention_policy(${args}) as version`.execute(db);
    return rows[0]!.version;
  });
}
