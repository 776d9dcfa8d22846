import { sql } from './kysely.js';
import { toNumber, type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface LedgerStatus {
  ledgerSeq: number;
  exportedSeq: number;
  unexported: number;
  oldestUnexportedAt: Date | null;
  target: string | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  /** Erasures that never reached the ledger: anything above 0 is a defect. */
  unledgered: number;
}

/** pii.ledger_status: is every erasure in the ledger, and the ledger copied outside the database? */
export async function ledgerStatus(db: LetheDb): Promise<LedgerStatus> {
  return sqlCall(async () => {
    const { rows } = await sql<Record<string, unknown>>`select * from pii.ledger_status()`.execute(db);
    const r = rows[0]!;
    return {
      ledgerSeq: toNumber(r.ledger_seq as string),
      exportedSeq: toNumber(r.exported_seq as string),
      unexported: toNumber(r.unexported as string),
      oldestUnexportedAt: (r.oldest_unexported_at as Date | null) ?? null,
      target: (r.target as string | null) ?? null,
      lastError: (r.last_error as string | null) ?? null,
      lastErrorAt: (r.last_error_at as Date | null) ?? null,
      unledgered: toNumber(r.unledgered as string),
    };
  });
}
