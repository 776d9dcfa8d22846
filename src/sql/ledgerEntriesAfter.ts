import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface LedgerLine {
  seq: number;
  /** The entry as one JSON text, exactly as the database wrote it (keyed hashes only). */
  line: string;
}

/** pii.ledger_entries_after: ledger entries after a sequence number, in order, as JSON lines. */
export async function ledgerEntriesAfter(db: LetheDb, afterSeq: number, maxEntries: number): Promise<LedgerLine[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{ seq: string; line: string }>`
      select seq, entry::text as line from pii.ledger_entries_after(${afterSeq}::bigint, ${maxEntries}::integer)`.execute(
      db,
    );
    return rows.map((r) => ({ seq: Number(r.seq), line: r.line }));
  });
}
