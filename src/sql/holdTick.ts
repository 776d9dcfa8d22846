import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface HoldNotice {
  holdId: string;
  notice: 'hold_expiring' | 'hold_expired';
  daysLeft: number | null;
}

/** pii.hold_tick: expiry notices (30/7/1 days) and ended holds; onDate replaces today (tests). */
export async function holdTick(db: LetheDb, onDate?: string): Promise<HoldNotice[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{ hold_id: string; notice: HoldNotice['notice']; days_left: number | null }>`
      select * from pii.hold_tick(${onDate ?? null}::date)`.execute(db);
    return rows.map((r) => ({ holdId: r.hold_id, notice: r.notice, daysLeft: r.days_left }));
  });
}
