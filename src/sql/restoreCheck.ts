import { sql } from './kysely.js';
import { toNumber, type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface RestoreCheck {
  ledgerEntries: number;
  /** Entries the (restored) database lacked and got back from the external copy. */
  ledgerRestored: number;
  /** Entries the database holds with another hash than the copy: the ledger was not restored. */
  ledgerConflicts: number;
  subjects: number;
  /** Back in the database: tombstoned again and in the replay request(s). */
  replayed: number;
  alreadyErased: number;
  inProgress: number;
  returned: number;
  notPresent: number;
  /** Hashed under another HMAC secret than this database's (rotated after the backup). */
  indeterminate: number;
  tombstonesWritten: number;
  requestIds: string[];
}

/** pii.restore_check: replays the external ledger's erasures on a restored database. */
export async function restoreCheck(db: LetheDb, entries: unknown[]): Promise<RestoreCheck> {
  return sqlCall(async () => {
    const { rows } = await sql<Record<string, string>>`
      select * from pii.restore_check(${JSON.stringify(entries)}::jsonb)`.execute(db);
    const r = rows[0]!;
    const n = (k: string) => toNumber(r[k]);
    return {
      ledgerEntries: n('ledger_entries'),
      ledgerRestored: n('ledger_restored'),
      ledgerConflicts: n('ledger_conflicts'),
      subjects: n('subjects'),
      replayed: n('replayed'),
      alreadyErased: n('already_erased'),
      inProgress: n('in_progress'),
      returned: n('returned'),
      notPresent: n('not_present'),
      indeterminate: n('indeterminate'),
      tombstonesWritten: n('tombstones_written'),
      requestIds: r.request_ids as unknown as string[],
    };
  });
}
