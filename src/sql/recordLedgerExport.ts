import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.record_ledger_export: how far the external copy got (error null), or why it failed. */
export async function recordLedgerExport(
  db: LetheDb,
  exportedSeq: number,
  target: string,
  error: string | null = null,
): Promise<void> {
  await sqlCall(async () => {
    await sql`select pii.record_ledger_export(${exportedSeq}::bigint, ${target}::text, ${error}::text)`.execute(db);
  });
}
