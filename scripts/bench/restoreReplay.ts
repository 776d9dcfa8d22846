// Item 9, restore replay: the time to re-erase N subjects after a backup restore (lethe
// restore-check, then the worker processing its requests) against the time the original
// erasure took through the same path (request -> worker -> done). Goal (issue 18): <= 1.1x.
//   backup:   CREATE DATABASE … TEMPLATE before the erasure (the data pg_restore gives back)
//   original: the committed request of item 2 (or, standalone, one measured here)
//   replay:   the ledger copied to a directory, a new database from the backup,
//             restore_check(entries) -> worker -> done
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { withDatabaseName } from '../../src/db/databaseUrl.js';
import { readLedgerEntries } from '../../src/ledger/ledgerDir.js';
import { createDb } from '../../src/sql/db.js';
import { restoreCheck } from '../../src/sql/restoreCheck.js';
import { exportLedger } from '../../src/worker/exportLedger.js';
import { runWorker } from '../../src/worker/runWorker.js';
import { timed } from './stats.js';
import { withClient } from './setup.js';

export interface RestoreReplayResult {
  subjects: number;
  /** request -> worker -> done, the original erasure. */
  originalSeconds: number;
  /** restore_check (ledger read, keys hashed, tombstones, requests) alone. */
  restoreCheckSeconds: number;
  /** The replay requests through the worker, after restore_check. */
  replaySeconds: number;
  /** (restoreCheckSeconds + replaySeconds) / originalSeconds. */
  ratio: number;
  ledgerEntries: number;
}

/** The database's name in a URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/** A copy of a database (which must have no session open): the backup, or its restore. */
export async function copyDatabase(url: string, to: string): Promise<void> {
  await withClient(withDatabaseName(url, 'postgres'), (c) =>
    c.query(`create database ${pg.escapeIdentifier(to)} template ${pg.escapeIdentifier(databaseName(url))}`),
  );
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  await withClient(withDatabaseName(url, 'postgres'), (c) =>
    c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`),
  );
}

/** Polls until every request in the database is finished. */
async function untilDone(pool: pg.Pool): Promise<void> {
  for (;;) {
    const { rows } = await pool.query<{ open: number }>(
      `select count(*)::int as open from pii.requests where status in ('queued', 'running')`,
    );
    if (rows[0]!.open === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `file` with a worker on the database, until every request is done; the seconds it took. */
export async function workedRequests(url: string, file: (pool: pg.Pool) => Promise<unknown>): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  const worker = await runWorker({ connectionString: url, pollInterval: 200, log: () => {} });
  try {
    await pool.query('checkpoint');
    const { seconds } = await timed(async () => {
      await file(pool);
      await untilDone(pool);
    });
    return seconds;
  } finally {
    await worker.stop();
    await pool.end();
  }
}

/**
 * Copies the ledger of erasedUrl (the database after the original erasure) to a directory,
 * restores backupUrl as a new database, and times restore_check plus its replay there.
 */
export async function benchRestoreReplay(
  backupUrl: string,
  erasedUrl: string,
  subjects: number,
  originalSeconds: number,
  log: (s: string) => void,
): Promise<RestoreReplayResult> {
  const ledgerDir = mkdtempSync(join(tmpdir(), 'lethe-bench-ledger-'));
  const restored = `${databaseName(backupUrl)}_restored`;
  const source = new pg.Pool({ connectionString: erasedUrl, max: 1 });
  source.on('error', () => {});
  try {
    await exportLedger(createDb(source), ledgerDir);
    await copyDatabase(backupUrl, restored);
    let restoreCheckSeconds = 0;
    let ledgerEntries = 0;
    const total = await workedRequests(withDatabaseName(backupUrl, restored), async (pool) => {
      const entries = await readLedgerEntries(ledgerDir);
      const check = await timed(() => restoreCheck(createDb(pool), entries));
      restoreCheckSeconds = check.seconds;
      ledgerEntries = check.value.ledgerEntries;
      if (check.value.replayed !== subjects)
        throw new Error(`restore_check replayed ${check.value.replayed} subjects, expected ${subjects}`);
    });
    const ratio = total / originalSeconds;
    log(
      `  restore_check ${restoreCheckSeconds.toFixed(2)} s, with the replay ${total.toFixed(2)} s: ${ratio.toFixed(2)}x the original ${originalSeconds.toFixed(2)} s`,
    );
    return {
      subjects,
      originalSeconds,
      restoreCheckSeconds,
      replaySeconds: total - restoreCheckSeconds,
      ratio,
      ledgerEntries,
    };
  } finally {
    await source.end();
    rmSync(ledgerDir, { recursive: true, force: true });
    await dropDatabase(backupUrl, restored);
  }
}
