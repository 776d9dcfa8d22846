// The table pii.requests (readable by pii_operator and pii_auditor), for the admin's list:
// open requests past their due date first, then the most recent.
import { sql } from './kysely.js';
import { type LetheDb, toNumber } from './db.js';
import { sqlCall } from './errors.js';
import type { RequestState } from './requestStatus.js';

export interface RequestSummary {
  id: string;
  status: RequestState;
  source: string;
  mode: string;
  total: number;
  matched: number;
  erased: number;
  /** Items processed (erased, already erased by another request, or matching no subject). */
  processed: number;
  failed: number;
  requestedBy: string;
  requestedAt: Date;
  dueAt: Date;
  overdue: boolean;
  residualCount: number | null;
}

export interface ListRequestsFilter {
  id?: string;
  status?: RequestState;
  limit?: number;
  offset?: number;
}

export async function listRequests(db: LetheDb, filter: ListRequestsFilter = {}): Promise<RequestSummary[]> {
  const overdue = sql<boolean>`(status in ('queued', 'running') and due_at < now())`;
  return sqlCall(async () => {
    let q = db
      .selectFrom('pii.requests')
      .select([
        'id',
        'status',
        'source',
        'mode',
        'total',
        'matched',
        'erased',
        'processed',
        'failed',
        'requested_by',
        'requested_at',
        'due_at',
        'residual_count',
      ])
      .select(overdue.as('overdue'));
    if (filter.id !== undefined) q = q.where('id', '=', filter.id);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    const rows = await q
      .orderBy(overdue, 'desc')
      .orderBy('requested_at', 'desc')
      .orderBy('id')
      .limit(filter.limit ?? 100)
      .offset(filter.offset ?? 0)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      status: r.status as RequestState,
      source: r.source,
      mode: r.mode,
      total: toNumber(r.total),
      matched: toNumber(r.matched),
      erased: toNumber(r.erased),
      processed: toNumber(r.processed),
      failed: toNumber(r.failed),
      requestedBy: r.requested_by,
      requestedAt: r.requested_at as Date,
      dueAt: r.due_at as Date,
      overdue: r.overdue,
      residualCount: r.residual_count,
    }));
  });
}
