// Restore replay: the time to re-erase N subjects after a backup restore (lethe
// restore-check, then the worker processing its request) against the time the original
// erasure took through the same path (request -> worker -> done). Goal (issue 18): <= 1.1x.
//   backup (CREATE DATABASE … TEMPLATE, the data as pg_restore would give it back)
//   original: request_erasure(N) -> worker with --ledger-dir -> done, ledger copied
//   restored: a new database from the backup; restore_check(ledger) -> worker -> done
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { withDatabaseName } from '../../src/db/databaseUrl.js';
import { readLedgerEntries } from '../../src/ledger/ledgerDir.js';
import { createDb } from '../../src/sql/db.js';
import { restoreCheck } from '../../src/sql/restoreCheck.js';
import { runWorker } from '../../src/worker/runWorker.js';
import { timed } from './stats.js';
import { withClient } from './setup.js';

export interface RestoreReplayResult {
  subjects: number;
  /** request -> worker -> done, the original erasure. */
  originalSeconds: number;
  /** restore_check (ledger read, keys hashed, tombstones, request) alone. */
  restoreCheckSeconds: number;
  /** The replay request through the worker, after restore_check. */
  replaySeconds: number;
  /** restoreCheckSeconds + replaySeconds over originalSeconds. */
  ratio: number;
  ledgerEntries: number;
  replayed: number;
}

/** Polls until every request in the database is finished and the ledger copy has caught up. */
async function untilDone(pool: pg.Pool): Promise<void> {
  for (;;) {
    const { rows } = await pool.query<{ open: number; unexported: number }>(
      `select (select count(*) from pii.requests where status in ('queued', 'running'))::int as open,
              (select unexported from pii.ledger_status())::int as unexported`,
    );
    if (rows[0]!.open === 0 && rows[0]!.unexported === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Request, worker, done: the seconds it took. */
async function workedRequest(
  url: string,
  ledgerDir: string,
  file: (pool: pg.Pool) => Promise<unknown>,
): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  const worker = await runWorker({ connectionString: url, pollInterval: 200, ledgerDir, log: () => {} });
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
 * Runs on adminUrl's server: copies benchDb (which must have no other session) as the
 * backup, erases `keys` in benchDb, restores the backup as a new database and replays.
 * Leaves benchDb erased; drops the copies.
 */
export async function benchRestoreReplay(
  adminUrl: string,
  benchDb: string,
  keys: string[],
  log: (s: string) => void,
): Promise<RestoreReplayResult> {
  const backup = `${benchDb}_backup`;
  const restored = `${benchDb}_restored`;
  const ledgerDir = mkdtempSync(join(tmpdir(), 'lethe-bench-ledger-'));
  const copy = (from: string, to: string) =>
    withClient(adminUrl, (c) =>
      c.query(`create database ${pg.escapeIdentifier(to)} template ${pg.escapeIdentifier(from)}`),
    );
  try {
    log(`restore replay: backup of ${benchDb}`);
    await copy(benchDb, backup);
    const benchUrl = withDatabaseName(adminUrl, benchDb);
    const originalSeconds = await workedRequest(benchUrl, ledgerDir, (pool) =>
      pool.query(`select pii.request_erasure($1::text[], source => 'bench')`, [keys]),
    );
    log(`restore replay: original erasure of ${keys.length} subjects ${originalSeconds.toFixed(2)} s`);

    await copy(backup, restored);
    const restoredUrl = withDatabaseName(adminUrl, restored);
    let restoreCheckSeconds = 0;
    let report: Awaited<ReturnType<typeof restoreCheck>> | undefined;
    const replaySeconds = await workedRequest(restoredUrl, ledgerDir, async (pool) => {
      const entries = await readLedgerEntries(ledgerDir);
      const check = await timed(() => restoreCheck(createDb(pool), entries));
      restoreCheckSeconds = check.seconds;
      report = check.value;
    });
    const ratio = replaySeconds / originalSeconds;
    log(
      `restore replay: restore_check ${restoreCheckSeconds.toFixed(2)} s, with the replay ${replaySeconds.toFixed(2)} s: ` +
        `${ratio.toFixed(2)}x the original (${report!.replayed} replayed)`,
    );
    return {
      subjects: keys.length,
      originalSeconds,
      restoreCheckSeconds,
      replaySeconds: replaySeconds - restoreCheckSeconds,
      ratio,
      ledgerEntries: report!.ledgerEntries,
      replayed: report!.replayed,
    };
  } finally {
    rmSync(ledgerDir, { recursive: true, force: true });
    for (const name of [restored, backup])
      await withClient(adminUrl, (c) => c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`));
  }
}
