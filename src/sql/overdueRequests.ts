import type { LetheDb } from './db.js';
import { toNumber } from './db.js';
import { sqlCall } from './errors.js';

export interface OverdueRequest {
  requestId: string;
  status: string;
  source: string;
  total: number;
  erased: number;
  requestedAt: Date;
  dueAt: Date;
}

/** The view pii.overdue_requests: open requests past their due date. */
export async function overdueRequests(db: LetheDb): Promise<OverdueRequest[]> {
  return sqlCall(async () => {
    const rows = await db
      .selectFrom('pii.overdue_requests')
      .select(['request_id', 'status', 'source', 'total', 'erased', 'requested_at', 'due_at'])
      .orderBy('due_at')
      .execute();
    return rows.map((r) => ({
      requestId: r.request_id!,
      status: r.status!,
      source: r.source!,
      total: toNumber(r.total),
      erased: toNumber(r.erased),
      requestedAt: r.requested_at!,
      dueAt: r.due_at!,
    }));
  });
}
