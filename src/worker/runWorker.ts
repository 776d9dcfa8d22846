// Runs Lethe's jobs in this process. The pool is shared by graphile-worker and the
// tasks' Kysely, so `concurrency` jobs need about concurrency + 2 connections.
import { Logger, run, runMigrations, type TaskList } from 'graphile-worker';
import type pg from 'pg';
import { createDb, createPool } from '../sql/db.js';
import { toLetheError } from '../sql/errors.js';
import { resumeRequests } from '../sql/resumeRequests.js';
import { openLedgerDir } from '../ledger/ledgerDir.js';
import { startLedgerExport } from './exportLedger.js';
import { LETHE_CRONTAB } from './retention.js';
import { enableErasureCompletedJobs } from '../sql/enableErasureCompletedJobs.js';
import { ERASURE_COMPLETED_TASK, letheTasks } from './tasks.js';
import { VAULT_SHRED_CRONTAB, VAULT_SHRED_TASK, vaultShredTask } from './vaultShred.js';
import type { KeyStore } from '../vault/keyStore.js';
import { KeyStoreVault, shreddedMessage } from '../vault/keyStoreVault.js';

/** graphile-worker's levels (its LogLevel is a const enum, unusable under isolatedModules). */
export type WorkerLogLevel = 'error' | 'warning' | 'info' | 'debug';

export interface RunWorkerOptions {
  connectionString?: string;
  /** Use this pool instead of connectionString (not ended by stop()). */
  pool?: pg.Pool;
  /**
   * Jobs run at once (different requests in parallel), and chunks run at once: those of
   * one request side by side (two workers erase one large request on two cores), at most
   * this many in all, whatever the number of requests open. Default 1.
   */
  concurrency?: number;
  /** Items per chunk; pii.settings.chunk_size by default. */
  chunkSize?: number;
  /**
   * Extra tasks, e.g. { erasure_completed: async (payload) => … }. A handler for
   * erasure_completed turns pii.settings.erasure_completed_jobs on (the jobs are queued only
   * then), or, when this role may not, logs a warning with the statement to run.
   */
  tasks?: TaskList;
  /** Milliseconds between polls for retries and scheduled jobs (new jobs arrive by LISTEN/NOTIFY). Default 2000. */
  pollInterval?: number;
  /**
   * Copy pii.erasure_ledger to this directory (JSON lines, one file per day, fsynced), outside
   * the database's backups, so lethe restore-check can replay erasures after a restore.
   */
  ledgerDir?: string;
  /** graphile-worker crontab; default LETHE_CRONTAB (retention hourly, legal holds daily). '' for none. */
  crontab?: string;
  /**
   * The vault's separate key store: the worker then has it destroy erased subjects' data
   * keys every minute (lethe_vault_shred, added to the crontab) and once at start.
   */
  keyStore?: KeyStore;
  /** Receives log lines (ids and counts only). Default: stderr for info and above. */
  log?: (level: WorkerLogLevel, message: string) => void;
}

export interface LetheWorker {
  /** Finishes the chunk in flight, then stops. Idempotent. */
  stop(): Promise<void>;
  /** Settles when the worker has stopped. */
  promise: Promise<void>;
  /** Open requests re-queued at start (left over from a crash). */
  resumed: number;
  /** Where the erasure ledger is copied, if anywhere. */
  ledgerDir: string | undefined;
}

const defaultLog = (level: WorkerLogLevel, message: string) => {
  if (level !== 'debug') process.stderr.write(`[lethe worker] ${level}: ${message}\n`);
};

export async function runWorker(opts: RunWorkerOptions): Promise<LetheWorker> {
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  const ownPool = !opts.pool;
  const pool =
    opts.pool ??
    createPool({ connectionString: opts.connectionString, max: concurrency + 2, application_name: 'lethe-worker' });
  const db = createDb(pool);
  const log = opts.log ?? defaultLog;

  try {
    // graphile-worker's schema first: after a psql-only install (`lethe sql`) it is not there
    // yet, and the requests filed meanwhile are queued by the resume below.
    const logger = new Logger(() => (level, message) => log(level as WorkerLogLevel, message));
    await runMigrations({ pgPool: pool, logger });
    // Jobs of requests whose worker died may stay locked for hours; re-queue them now.
    // A ledger directory that cannot be written fails the start, not the first erasure.
    if (opts.ledgerDir) await openLedgerDir(opts.ledgerDir);
    const resumed = await resumeRequests(db);
    if (resumed > 0) log('info', `re-queued ${resumed} open request(s)`);
    if (opts.tasks?.[ERASURE_COMPLETED_TASK]) {
      const announced = await enableErasureCompletedJobs(db);
      if (announced === 'enabled')
        log('info', 'erasure_completed jobs turned on (pii.settings.erasure_completed_jobs)');
      if (announced === 'forbidden')
        log(
          'warning',
          "an erasure_completed handler is registered but no jobs are queued for it: as Lethe's owner run update pii.settings set erasure_completed_jobs = true;",
        );
    }

    const crontab = [opts.crontab ?? LETHE_CRONTAB, opts.keyStore ? VAULT_SHRED_CRONTAB : '']
      .filter(Boolean)
      .join('\n');
    // Keys queued while no worker ran are destroyed before the first job.
    if (opts.keyStore) {
      const shredded = await new KeyStoreVault(db, opts.keyStore).shredErasedKeys();
      if (shredded > 0) log('info', `vault: ${shreddedMessage(shredded)}`);
    }
    const runner = await run({
      pgPool: pool,
      concurrency,
      pollInterval: opts.pollInterval ?? 2000,
      taskList: {
        ...opts.tasks,
        ...letheTasks(db, { chunkSize: opts.chunkSize, parallelChunks: concurrency }),
        ...(opts.keyStore && { [VAULT_SHRED_TASK]: vaultShredTask(db, opts.keyStore) }),
      },
      // graphile-worker reads ./crontab when given no crontab (and logs that it found none):
      // '' means no schedule, so it gets an empty list of items instead.
      ...(crontab === '' ? { parsedCronItems: [] } : { crontab }),
      // Signals are the caller's business (the CLI stops gracefully on SIGTERM/SIGINT);
      // a library must not install process-wide handlers.
      noHandleSignals: true,
      // On stop, tasks see abortSignal soon and stop between chunks.
      gracefulShutdownAbortTimeout: 500,
      logger,
      // Unbatched, graphile-worker records a finished or failed job without awaiting it,
      // so stop() could return (and the pool end) before the job was unlocked. Batches
      // are flushed on shutdown; a delay of 0 batches nothing in practice.
      preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    });

    const ledger = opts.ledgerDir ? startLedgerExport(db, opts.ledgerDir, opts.pollInterval ?? 2000, log) : undefined;
    let stopped: Promise<void> | undefined;
    const finished = runner.promise.finally(async () => {
      await ledger?.stop();
      // Not db.destroy(): Kysely would end the pool even when it is the caller's.
      if (ownPool) await pool.end().catch(() => undefined);
    });
    return {
      resumed,
      ledgerDir: opts.ledgerDir,
      promise: finished,
      stop: () =>
        (stopped ??= (async () => {
          await runner.stop();
          await finished.catch(() => undefined);
        })()),
    };
  } catch (err) {
    if (ownPool) await pool.end().catch(() => undefined);
    throw toLetheError(err);
  }
}
