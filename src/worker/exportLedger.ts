// Copies new pii.erasure_ledger entries to the ledger directory (src/ledger/ledgerDir.ts),
// each entry once, in order. A copy that cannot continue (the directory is ahead of the
// database: a restore; or entries are missing) stops with an error instead of guessing.
import { sql } from '../sql/kysely.js';
import type { LetheDb } from '../sql/db.js';
import { ledgerEntriesAfter } from '../sql/ledgerEntriesAfter.js';
import { recordLedgerExport } from '../sql/recordLedgerExport.js';
import { appendLedgerLines, readLedgerCursor } from '../ledger/ledgerDir.js';

const BATCH = 10_000;

export class LedgerExportError extends Error {
  override readonly name = 'LedgerExportError';
}

/** Writes every entry the directory lacks; returns how many. One exporter at a time per database. */
export async function exportLedger(db: LetheDb, dir: string): Promise<number> {
  return db.transaction().execute(async (trx) => {
    // Workers sharing a directory must not append the same entries twice.
    await sql`select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('lethe:ledger-export'))`.execute(trx);
    const cursor = await readLedgerCursor(dir);
    if (cursor.seq > 0) {
      const [atCursor] = await ledgerEntriesAfter(trx, cursor.seq - 1, 1);
      const hash = atCursor ? (JSON.parse(atCursor.line) as { entry_hash: string }).entry_hash : undefined;
      if (atCursor?.seq !== cursor.seq || hash !== cursor.entryHash) {
        throw new LedgerExportError(
          `the ledger directory ${dir} ends with entry ${cursor.seq}, which this database does not hold ` +
            `(restored from a backup?): run lethe restore-check --ledger ${dir} before starting the worker`,
        );
      }
    }
    let last = cursor.seq;
    let written = 0;
    for (;;) {
      const batch = await ledgerEntriesAfter(trx, last, BATCH);
      if (batch.length === 0) break;
      if (batch[0]!.seq !== last + 1) {
        throw new LedgerExportError(
          `ledger entries ${last + 1} to ${batch[0]!.seq - 1} are missing from the database: see pii.verify_audit_chain()`,
        );
      }
      await appendLedgerLines(
        dir,
        batch.map((e) => e.line),
      );
      last = batch.at(-1)!.seq;
      written += batch.length;
    }
    if (written > 0) await recordLedgerExport(trx, last, dir);
    return written;
  });
}

export interface LedgerExporter {
  /** Stops the loop after a last export (the entries of the final chunk). */
  stop(): Promise<void>;
}

/** Exports every intervalMs until stopped; a failure is logged as an error and recorded in pii_internal.ledger_export. */
export function startLedgerExport(
  db: LetheDb,
  dir: string,
  intervalMs: number,
  log: (level: 'error' | 'info', message: string) => void,
): LedgerExporter {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const round = async () => {
    try {
      const n = await exportLedger(db, dir);
      if (n > 0) log('info', `ledger: ${n} entr${n === 1 ? 'y' : 'ies'} written to ${dir}`);
    } catch (err) {
      const message = `ledger copy to ${dir} failed: ${(err as Error).message}`;
      log('error', message);
      await recordLedgerExport(db, 0, dir, message).catch((e: unknown) =>
        log('error', `ledger: could not record the failure: ${(e as Error).message}`),
      );
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = round().finally(schedule);
    }, intervalMs);
  };
  running = round().finally(schedule);
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
      await round();
    },
  };
}
