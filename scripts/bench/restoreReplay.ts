// Item 9, restore replay: the time to re-erase N subjects after a backup restore (lethe
// restore-check, then the worker processing its requests) against the time the original
// erasure takes through the same path (request -> worker -> done). Goal (issue 18): <= 1.1x.
//   backup:   CREATE DATABASE … TEMPLATE before the erasure (the data pg_restore gives back)
//   original: a new database from the backup, the request -> worker -> done (its ledger,
//             copied to a directory, is the external copy the replays read)
//   replay:   a new database from the backup, restore_check(entries) -> worker -> done
// Both sides run on a fresh copy, alternating (original first in even rounds, the replay
// first in odd ones), medians reported. The original is NOT item 2's committed request on
// the long-lived database: at scale 1 an erasure of 50,000 subjects reads about 2.3 million
// blocks from outside shared_buffers (most pages of crm.events and its index), so its time
// is mostly the OS page cache. The long-lived database had erased (and rolled back) the
// same subjects a dozen times in the sections before, its pages were hot; the restored
// copy's were partly on disk. Both sides read the same blocks (blocksRead below), so the
// sides differ only by what Lethe does differently: restore_check and the replay's request.
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
import { median, roundOrder, timed } from './stats.js';
import { withClient } from './setup.js';

/** One timed run on its own fresh copy of the backup. */
export interface RestoreReplayRun {
  side: 'original' | 'replay';
  /** request -> done (original), or restore_check -> done (replay). */
  seconds: number;
  /** The replay's restore_check alone (0 for the original). */
  restoreCheckSeconds: number;
  /** Blocks the copy's backends read from outside shared_buffers (pg_stat_database.blks_read). */
  blocksRead: number;
}

export interface RestoreReplayResult {
  subjects: number;
  /** Median of the original erasures (request -> worker -> done), each on a fresh copy of the backup. */
  originalSeconds: number;
  /** Median of restore_check (ledger read, keys hashed, tombstones, requests) alone. */
  restoreCheckSeconds: number;
  /** Median of the replay requests through the worker, after restore_check. */
  replaySeconds: number;
  /** Median of the replays whole (restore_check + requests). */
  replayTotalSeconds: number;
  /** replayTotalSeconds / originalSeconds. */
  ratio: number;
  ledgerEntries: number;
  runs: RestoreReplayRun[];
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
 * pg_stat_database.blks_read of a database, once its backends have gone (a backend reports
 * its counters when it exits, a moment after its connection closed): read until it stops
 * changing, 3 s at most. Not timed.
 */
async function blocksRead(url: string, name: string): Promise<number> {
  return withClient(withDatabaseName(url, 'postgres'), async (c) => {
    let last = -1;
    for (let i = 0; i < 10; i++) {
      const { rows } = await c.query<{ n: string }>(
        `select coalesce(sum(blks_read), 0)::bigint as n from pg_stat_database where datname = $1`,
        [name],
      );
      const n = Number(rows[0]!.n);
      if (n === last) return n;
      last = n;
      await new Promise((r) => setTimeout(r, 300));
    }
    return last;
  });
}

/**
 * Times, on fresh copies of backupUrl (a database holding the keys' subjects, not erased),
 * the original erasure of keys and its replay after a restore, `rounds` of each, alternating.
 * The first original's ledger (written to a directory by lethe's exporter) is the external
 * copy every replay reads.
 */
export async function benchRestoreReplay(
  backupUrl: string,
  keys: string[],
  rounds: number,
  log: (s: string) => void,
): Promise<RestoreReplayResult> {
  const ledgerDir = mkdtempSync(join(tmpdir(), 'lethe-bench-ledger-'));
  const copy = `${databaseName(backupUrl)}_run`;
  const copyUrl = withDatabaseName(backupUrl, copy);
  const runs: RestoreReplayRun[] = [];
  let entries: unknown[] | undefined;
  let ledgerEntries = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      // The original first in round 0: its ledger is the replays' external copy.
      for (const side of roundOrder(['original', 'replay'] as const, round)) {
        await dropDatabase(backupUrl, copy);
        await copyDatabase(backupUrl, copy);
        let restoreCheckSeconds = 0;
        const seconds = await workedRequests(copyUrl, async (pool) => {
          if (side === 'original') {
            await pool.query(`select pii.request_erasure($1::text[], source => 'bench')`, [keys]);
            return;
          }
          const check = await timed(() => restoreCheck(createDb(pool), entries!));
          restoreCheckSeconds = check.seconds;
          ledgerEntries = check.value.ledgerEntries;
          if (check.value.replayed !== keys.length)
            throw new Error(`restore_check replayed ${check.value.replayed} subjects, expected ${keys.length}`);
        });
        if (side === 'original' && !entries) {
          const source = new pg.Pool({ connectionString: copyUrl, max: 1 });
          source.on('error', () => {});
          try {
            await exportLedger(createDb(source), ledgerDir);
          } finally {
            await source.end();
          }
          entries = await readLedgerEntries(ledgerDir);
        }
        const run = { side, seconds, restoreCheckSeconds, blocksRead: await blocksRead(backupUrl, copy) };
        runs.push(run);
        log(
          `  round ${round + 1}/${rounds}: ${side.padEnd(8)} ${seconds.toFixed(2)} s` +
            (side === 'replay' ? ` (restore_check ${restoreCheckSeconds.toFixed(2)} s)` : '') +
            `, ${run.blocksRead} blocks read`,
        );
      }
    }
  } finally {
    rmSync(ledgerDir, { recursive: true, force: true });
    await dropDatabase(backupUrl, copy);
  }
  const of = (side: RestoreReplayRun['side']) => runs.filter((r) => r.side === side);
  const originalSeconds = median(of('original').map((r) => r.seconds));
  const replayTotal = median(of('replay').map((r) => r.seconds));
  const restoreCheckSeconds = median(of('replay').map((r) => r.restoreCheckSeconds));
  const ratio = replayTotal / originalSeconds;
  log(
    `  restore_check ${restoreCheckSeconds.toFixed(2)} s, with the replay ${replayTotal.toFixed(2)} s: ` +
      `${ratio.toFixed(2)}x the original ${originalSeconds.toFixed(2)} s (medians of ${rounds} on fresh copies)`,
  );
  return {
    subjects: keys.length,
    originalSeconds,
    restoreCheckSeconds,
    replaySeconds: median(of('replay').map((r) => r.seconds - r.restoreCheckSeconds)),
    replayTotalSeconds: replayTotal,
    ratio,
    ledgerEntries,
    runs,
  };
}
