// The audit trail (pii.audit): who, what, when, counts; subjects only as keyed hashes.
import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface AuditRow {
  id: number;
  at: Date;
  actor: string;
  application: string;
  action: string;
  requestId: string | null;
  subjectHash: string | null;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  requestId?: string;
  action?: string;
  since?: Date;
  /** Rows before this instant (exclusive). */
  until?: Date;
  /** Newest first; 100 by default. */
  limit?: number;
}

export async function auditRows(db: LetheDb, filter: AuditFilter = {}): Promise<AuditRow[]> {
  return sqlCall(async () => {
    let q = db
      .selectFrom('pii.audit')
      .select(['id', 'at', 'actor', 'application', 'action', 'request_id', 'details'])
      .select(sql<string | null>`encode(subject_hash, 'hex')`.as('subject_hash'));
    if (filter.requestId !== undefined) q = q.where('request_id', '=', filter.requestId);
    if (filter.action !== undefined) q = q.where('action', '=', filter.action);
    if (filter.since !== undefined) q = q.where('at', '>=', filter.since);
    if (filter.until !== undefined) q = q.where('at', '<', filter.until);
    const rows = await q
      .orderBy('id', 'desc')
      .limit(filter.limit ?? 100)
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      at: r.at,
      actor: r.actor,
      application: r.application,
      action: r.action,
      requestId: r.request_id,
      subjectHash: r.subject_hash,
      details: (r.details ?? {}) as Record<string, unknown>,
    }));
  });
}
