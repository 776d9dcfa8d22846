import { sql } from './kysely.js';
import { type LetheDb, namedArgs, toNumber } from './db.js';
import { sqlCall } from './errors.js';
import type { ErasureMode } from './requestErasure.js';

export interface QueryErasureOptions {
  requestKey?: string;
  kind?: string;
  mode?: ErasureMode;
  /** Count and rows that would change; nothing is requested. */
  dryRun?: boolean;
}

export interface QueryErasure {
  /** null on a dry run. */
  requestId: string | null;
  subjects: number;
  /** Rows each table would change (dry run only). */
  rowsToChange: Record<string, number> | null;
}

/** pii.request_erasure_from_query: the subjects a query selects (at most maxSubjects) become one request. */
export async function requestErasureFromQuery(
  db: LetheDb,
  subjectQuery: string,
  maxSubjects: number,
  opts: QueryErasureOptions = {},
): Promise<QueryErasure> {
  const args = namedArgs([
    ['subject_query', subjectQuery, 'text'],
    ['max_subjects', maxSubjects, 'integer'],
    ['request_key', opts.requestKey, 'text'],
    ['kind', opts.kind, 'text'],
    ['mode', opts.mode, 'text'],
    ['dry_run', opts.dryRun, 'boolean'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{
      request_id: string | null;
      subjects: string;
      rows_to_change: Record<string, number> | null;
    }>`select * from pii.request_erasure_from_query(${args})`.execute(db);
    const r = rows[0]!;
    return { requestId: r.request_id, subjects: toNumber(r.subjects), rowsToChange: r.rows_to_change };
  });
}
