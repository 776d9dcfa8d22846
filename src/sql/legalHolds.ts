import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface LegalHold {
  holdId: string;
  reason: string;
  heldUntil: string;
  status: 'active' | 'released' | 'expired';
  daysLeft: number;
  /** Held tables; null: every registered table. */
  tables: string[] | null;
  subjects: number;
  placedBy: string;
  placedAt: Date;
  releasedBy: string | null;
  releasedAt: Date | null;
}

/** pii.holds (pii_auditor, pii_admin): active first, then by end date. Subjects as a count only. */
export async function legalHolds(db: LetheDb, limit = 200): Promise<LegalHold[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      hold_id: string;
      reason: string;
      held_until: string;
      status: LegalHold['status'];
      days_left: number;
      tables: string[] | null;
      subjects: number;
      placed_by: string;
      placed_at: Date;
      released_by: string | null;
      released_at: Date | null;
    }>`select h.hold_id, h.reason, h.held_until::text as held_until, h.status, h.days_left, h.tables, h.subjects,
              h.placed_by, h.placed_at, h.released_by, h.released_at
       from pii.holds h order by h.status <> 'active', h.held_until, h.placed_at limit ${limit}::integer`.execute(db);
    return rows.map((r) => ({
      holdId: r.hold_id,
      reason: r.reason,
      heldUntil: r.held_until,
      status: r.status,
      daysLeft: r.days_left,
      tables: r.tables,
      subjects: r.subjects,
      placedBy: r.placed_by,
      placedAt: r.placed_at,
      releasedBy: r.released_by,
      releasedAt: r.released_at,
    }));
  });
}
