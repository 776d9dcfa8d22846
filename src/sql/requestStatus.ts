import { sql } from './kysely.js';
import { type LetheDb, toNumber, toNumberOrNull } from './db.js';
import { sqlCall } from './errors.js';
import type { ErasureMode } from './requestErasure.js';

export type RequestState = 'queued' | 'running' | 'done' | 'failed';

export interface RequestStatus {
  id: string;
  status: RequestState;
  mode: ErasureMode;
  source: string;
  /** Distinct subjects in the request. */
  total: number;
  /** Subjects that had a row in the subject table. */
  matched: number;
  unmatched: number;
  /** Items processed successfully (matched or not). */
  erased: number;
  failed: number;
  /** Keys given more than once (after canonicalisation). */
  duplicates: number;
  /** 0..1 */
  progress: number;
  requestedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  dueAt: Date;
  verifiedAt: Date | null;
  residualCount: number | null;
  /** Rows changed per table, summed over chunks. */
  rowsAffected: Record<string, number>;
  error: string | null;
  /** Rows per table left intact because others share them (an address staff also reference). */
  sharedKept: Record<string, number>;
  /** The subject kind the request erases (pii.subject_table.kind). */
  kind: string;
}

/** The row pii.request_status returns (pg's default parsing: bigint and numeric as strings). */
interface RequestStatusRow {
  id: string;
  status: RequestState;
  mode: ErasureMode;
  source: string;
  total: string;
  matched: string;
  unmatched: string;
  erased: string;
  failed: string;
  duplicates: string;
  progress: string;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  due_at: Date;
  verified_at: Date | null;
  residual_count: number | null;
  rows_affected: Record<string, number | string> | null;
  error: string | null;
  shared_kept: Record<string, number | string> | null;
  kind: string;
}

export const REQUEST_STATUS_COLUMNS = [
  'id',
  'status',
  'mode',
  'source',
  'total',
  'matched',
  'unmatched',
  'erased',
  'failed',
  'duplicates',
  'progress',
  'requested_at',
  'started_at',
  'finished_at',
  'due_at',
  'verified_at',
  'residual_count',
  'rows_affected',
  'error',
  'shared_kept',
  'kind',
] as const satisfies ReadonlyArray<keyof RequestStatusRow>;

/** pii.request_status. Unknown ids raise LetheError 42704. */
export async function requestStatus(db: LetheDb, requestId: string): Promise<RequestStatus> {
  return sqlCall(async () => {
    const { rows } = await sql<RequestStatusRow>`select * from pii.request_status(${requestId}::uuid)`.execute(db);
    const r = rows[0]!;
    return {
      id: r.id,
      status: r.status,
      mode: r.mode,
      source: r.source,
      total: toNumber(r.total),
      matched: toNumber(r.matched),
      unmatched: toNumber(r.unmatched),
      erased: toNumber(r.erased),
      failed: toNumber(r.failed),
      duplicates: toNumber(r.duplicates),
      progress: toNumber(r.progress),
      requestedAt: r.requested_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      dueAt: r.due_at,
      verifiedAt: r.verified_at,
      residualCount: toNumberOrNull(r.residual_count),
      rowsAffected: Object.fromEntries(Object.entries(r.rows_affected ?? {}).map(([t, n]) => [t, Number(n)])),
      error: r.error,
      sharedKept: Object.fromEntries(Object.entries(r.shared_kept ?? {}).map(([t, n]) => [t, Number(n)])),
      kind: r.kind,
    };
  });
}

export function isFinished(status: RequestState): boolean {
  return status === 'done' || status === 'failed';
}
