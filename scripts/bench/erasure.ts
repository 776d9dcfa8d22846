// Erasure benchmarks (items 1-4): Lethe's engine against hand-written SQL on the same
// subjects and the same data.
//
// Restoring the data between runs: every run happens inside a transaction that is rolled
// back, so each method erases exactly the same subjects from exactly the same rows. A
// rollback leaves garbage behind (the dead row versions of the aborted UPDATEs and their
// index entries); a VACUUM of the updated tables and a CHECKPOINT after every run (not
// timed) put the next run back on the same footing. Using a different subject set per run
// instead would make every run do different work and make the state comparison
// impossible; the rollback keeps A and B strictly comparable.
import type pg from 'pg';
import { runWorker } from '../../src/worker/runWorker.js';
import { connect, HAND_ONE_STATEMENT, HAND_STATEMENTS } from './setup.js';
import {
  currentXid,
  fingerprint,
  rowsWritten,
  type RowsWritten,
  stateDifferences,
  type StateFingerprint,
  writtenSince,
} from './state.js';
import { profileStatements, type StatementStat } from './profile.js';
import { median, peakRss, quantile, roundOrder, timed } from './stats.js';

export type Method = 'hand' | 'lethe' | 'request' | 'plpgsql' | 'client';

export const METHOD_LABELS: Record<Method, string> = {
  hand: 'hand-written set-based SQL (the floor)',
  lethe: 'pii.erase_subjects',
  request: 'pii.request_erasure + chunks + finish_request',
  plpgsql: 'per-subject PL/pgSQL loop',
  client: 'row-at-a-time statements from a client',
};

/** Tables a run changes and that VACUUM must clean after its rollback (updates leave dead versions). */
const RESTORE_VACUUM = [
  'crm.customers',
  'crm.orders',
  'crm.order_items',
  'pii_internal.tombstones',
  'pii.audit',
  // The ledger's rolled-back appends (one entry per subject): left dead, a single-subject
  // erasure after the bulk runs took twice as long.
  'pii.erasure_ledger',
  'pii_internal.erasure_ledger_pending',
  'pii_internal.chain_heads',
  'pii.requests',
  'pii_internal.request_items',
  'pii_internal.request_residuals',
  'graphile_worker._private_jobs',
  'graphile_worker._private_job_queues',
];

export interface RunResult {
  method: Method;
  subjects: number;
  seconds: number;
  rowsWritten: RowsWritten;
  fingerprint?: StateFingerprint;
}

export class Eraser {
  constructor(private readonly db: pg.Client) {}

  /** Runs a method in a transaction, timed, and rolls it back. */
  async run(method: Method, keys: string[], opts: { fingerprint?: boolean } = {}): Promise<RunResult> {
    const db = this.db;
    await db.query('begin');
    try {
      const firstXid = await currentXid(db);
      const before = await rowsWritten(db);
      const { seconds } = await timed(() => this.erase(method, keys));
      const written = writtenSince(before, await rowsWritten(db));
      const fp = opts.fingerprint ? await fingerprint(db, keys, firstXid, written) : undefined;
      return { method, subjects: keys.length, seconds, rowsWritten: written, fingerprint: fp };
    } finally {
      await db.query('rollback');
    }
  }

  /** Cleans up after a rolled-back run and flushes dirty buffers (not timed). */
  async restore(): Promise<number> {
    const { seconds } = await timed(async () => {
      await this.db.query(`vacuum ${RESTORE_VACUUM.join(', ')}`);
      await this.db.query('checkpoint');
    });
    return seconds;
  }

  async erase(method: Method, keys: string[]): Promise<void> {
    const db = this.db;
    switch (method) {
      case 'lethe':
        await db.query('select * from pii.erase_subjects($1::text[])', [keys]);
        return;
      case 'hand':
        for (const s of HAND_STATEMENTS) await db.query(s.sql, [keys]);
        return;
      case 'plpgsql':
        await db.query('select bench.erase_loop($1::bigint[])', [keys]);
        return;
      case 'client':
        await eraseRowByRow(db, keys);
        return;
      case 'request': {
        const id = await requestErasure(db, keys);
        while ((await db.query<{ n: number }>('select pii.process_request_chunk($1::uuid) as n', [id])).rows[0]!.n > 0);
        const { rows } = await db.query<{ s: string }>('select pii.finish_request($1::uuid) as s', [id]);
        if (rows[0]!.s !== 'done') throw new Error(`request ended ${rows[0]!.s}, not done`);
        return;
      }
    }
  }
}

async function requestErasure(db: pg.ClientBase, keys: string[]): Promise<string> {
  const { rows } = await db.query<{ id: string }>(`select pii.request_erasure($1::text[], source => 'bench') as id`, [
    keys,
  ]);
  return rows[0]!.id;
}

/**
 * How general DSR tools erase: find the subject's rows, then one UPDATE or DELETE per row
 * by primary key, each a round trip (prepared statements).
 */
async function eraseRowByRow(db: pg.ClientBase, keys: string[]): Promise<void> {
  const q = (name: string, text: string, values: unknown[]) => db.query({ name, text, values });
  for (const k of keys) {
    const items = await q(
      'dsr_items',
      `select i.id from crm.order_items i join crm.orders o on o.id = i.order_id
                                         where o.customer_id = $1 and i.gift_message is not null`,
      [k],
    );
    for (const r of items.rows)
      await q('dsr_item', 'update crm.order_items set gift_message = null where id = $1', [r.id]);
    const events = await q('dsr_events', 'select id, occurred_at::text as at from crm.events where customer_id = $1', [
      k,
    ]);
    for (const r of events.rows)
      await q('dsr_event', 'delete from crm.events where id = $1 and occurred_at = $2::timestamptz', [r.id, r.at]);
    const orders = await q(
      'dsr_orders',
      `select id from crm.orders where customer_id = $1
                                          and (shipping_name, shipping_address, billing_email) is distinct from (null, null, null)`,
      [k],
    );
    for (const r of orders.rows) {
      await q(
        'dsr_order',
        'update crm.orders set shipping_name = null, shipping_address = null, billing_email = null where id = $1',
        [r.id],
      );
    }
    const loyalty = await q('dsr_loyalty', 'select id from crm.loyalty_points where customer_id = $1', [k]);
    for (const r of loyalty.rows) await q('dsr_point', 'delete from crm.loyalty_points where id = $1', [r.id]);
    await q(
      'dsr_customer',
      `update crm.customers
                                set email = null, first_name = null, last_name = null, phone = null, birth_date = null, city = null,
                                    ip_address = null, notes = null, status = 'DEACTIVATED', email_opt_out = true, sms_opt_out = true
                              where id = $1`,
      [k],
    );
  }
}

export interface BulkErasureResult {
  subjects: number;
  capped: number;
  pairs: number;
  /** Seconds of every timed run, in run order. */
  samples: Record<Method, number[]>;
  medians: Record<Method, number>;
  /** Median seconds scaled to the bulk subject count (the capped methods are extrapolated linearly). */
  bulkSeconds: Record<Method, number>;
  rowsWritten: Partial<Record<Method, RowsWritten>>;
  /** Reference rows written by the floor at the capped size. */
  cappedRowsWritten?: RowsWritten;
  /** Per method: tables whose state differs from the floor's on the same subjects (empty = same state). */
  differences: Partial<Record<Method, string[]>>;
  reference: StateFingerprint;
  warmupSeconds: number;
  restoreSeconds: number[];
}

const CAPPED: ReadonlySet<Method> = new Set(['plpgsql', 'client']);

/** Item 1 (and the in-transaction samples of item 2): all methods, alternating, medians. */
export async function benchBulkErasure(
  eraser: Eraser,
  subjects: { bulk: string[]; capped: string[] },
  pairs: number,
  log: (s: string) => void,
  methods: Method[] = ['hand', 'lethe', 'request', 'plpgsql', 'client'],
): Promise<BulkErasureResult> {
  const restoreSeconds: number[] = [];
  const keysOf = (m: Method) => (CAPPED.has(m) ? subjects.capped : subjects.bulk);

  // Warm-up (not timed): the floor once at each size, giving the reference states.
  log(`warm-up: floor on ${subjects.bulk.length} subjects (reference state)`);
  const warm = await eraser.run('hand', subjects.bulk, { fingerprint: true });
  restoreSeconds.push(await eraser.restore());
  const warmCapped = await eraser.run('hand', subjects.capped, { fingerprint: true });
  restoreSeconds.push(await eraser.restore());

  const all: Method[] = ['hand', 'lethe', 'request', 'plpgsql', 'client'];
  const samples = Object.fromEntries(all.map((m) => [m, [] as number[]])) as Record<Method, number[]>;
  const written: Partial<Record<Method, RowsWritten>> = {};
  const differences: Partial<Record<Method, string[]>> = {};
  for (let round = 0; round < pairs; round++) {
    for (const m of roundOrder(methods, round)) {
      const keys = keysOf(m);
      const first = round === 0;
      const r = await eraser.run(m, keys, { fingerprint: first });
      samples[m].push(r.seconds);
      if (first) {
        written[m] = r.rowsWritten;
        differences[m] = stateDifferences(r.fingerprint!, CAPPED.has(m) ? warmCapped.fingerprint! : warm.fingerprint!);
      }
      restoreSeconds.push(await eraser.restore());
      log(
        `round ${round + 1}/${pairs}: ${m.padEnd(7)} ${keys.length} subjects ${r.seconds.toFixed(2)} s` +
          (first
            ? `  (state ${differences[m]!.length === 0 ? 'identical to the floor' : `DIFFERS: ${differences[m]!.join(', ')}`})`
            : ''),
      );
    }
  }
  const medians = Object.fromEntries(Object.entries(samples).map(([m, xs]) => [m, median(xs)])) as Record<
    Method,
    number
  >;
  const bulkSeconds = Object.fromEntries(
    (Object.keys(samples) as Method[]).map((m) => [m, medians[m] * (subjects.bulk.length / keysOf(m).length)]),
  ) as Record<Method, number>;
  written.hand = warm.rowsWritten;
  return {
    subjects: subjects.bulk.length,
    capped: subjects.capped.length,
    pairs,
    samples,
    medians,
    bulkSeconds,
    rowsWritten: written,
    cappedRowsWritten: warmCapped.rowsWritten,
    differences,
    reference: warm.fingerprint!,
    warmupSeconds: warm.seconds,
    restoreSeconds,
  };
}

export interface CommittedRequestResult {
  requestId: string;
  /** From the pii.request_erasure call to status done, with the worker already running. */
  seconds: number;
  requestCallSeconds: number;
  /** From the request's creation to the end of its last chunk, and from there to done (verification). */
  erasingSeconds: number;
  finishingSeconds: number;
  chunks: number;
  status: string;
  residuals: number | null;
  rowsAffected: Record<string, number>;
  usedWorker: boolean;
  /** graphile-worker concurrency: chunks of the request processed at once. */
  workers: number;
  /** Peak resident set of the bench process (which runs the worker) while the request ran. */
  peakRssMiB: number;
  /** What the worker did besides erasing: its log, retries, failed job runs, and what its sessions waited on. */
  observed?: WorkerObservation;
}

export interface WorkerObservation {
  /** Chunks run again at once after a deadlock or serialization failure (chunkWithRetry). */
  chunkRetries: number;
  /** Job runs that failed (graphile-worker then retries with its exponential backoff). */
  jobFailures: number;
  /** The worker's warnings and errors, first 20 (ids, counts and SQLSTATEs only). */
  messages: string[];
  /** Samples of the worker's sessions (pg_stat_activity every 100 ms): in which state, per sample. */
  samples: number;
  /** Session-samples per wait (wait_event_type:wait_event, with the locked relation or tuple for lock waits; 'cpu' when not waiting). */
  waits: Record<string, number>;
}

/**
 * Samples the worker's sessions (application_name lethe-worker) every 100 ms while fn runs:
 * how many were running or waiting, and on what (for a heavyweight lock, what it is on).
 */
async function sampleWorkerWaits<T>(
  url: string,
  fn: () => Promise<T>,
): Promise<{ samples: number; waits: Record<string, number>; value: T }> {
  const probe = await connect(url);
  const waits: Record<string, number> = {};
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await probe.query<{ w: string }>(
        `select case when a.wait_event_type is null then 'cpu'
                     else a.wait_event_type || ':' || a.wait_event ||
                          coalesce(' on ' || (select l.locktype || ' ' || coalesce(l.relation::regclass::text, '') ||
                                                     coalesce(' mode ' || l.mode, '')
                                                from pg_locks l where l.pid = a.pid and not l.granted limit 1), '') end as w
           from pg_stat_activity a
          where a.application_name = 'lethe-worker' and a.state = 'active' and a.query not ilike '%graphile_worker%'`,
      );
      samples++;
      for (const r of rows) waits[r.w] = (waits[r.w] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const value = await fn();
    return { samples, waits, value };
  } finally {
    running = false;
    await loop.catch(() => undefined);
    await probe.end();
  }
}

/**
 * Item 2, for real: the request committed and processed by Lethe's graphile-worker
 * (src/worker runWorker), one transaction per chunk, timed until its status is done.
 */
export async function benchCommittedRequest(
  db: pg.Client,
  url: string,
  keys: string[],
  log: (s: string) => void,
  workers = 1,
): Promise<CommittedRequestResult> {
  const { rows: open } = await db.query<{ requests: number; items: number }>(
    `select count(*)::int as requests, coalesce(sum(r.total - r.processed), 0)::int as items
       from pii.requests r where r.status in ('queued', 'running')`,
  );
  if (open[0]!.requests > 0) {
    // The worker would run their jobs beside this one, on the same cores and often the
    // same subjects: the time would not be this request's.
    throw new Error(
      `${open[0]!.requests} other request(s) are open (${open[0]!.items} pending items); a committed request is timed alone`,
    );
  }
  const messages: string[] = [];
  let chunkRetries = 0;
  let jobFailures = 0;
  const worker = await runWorker({
    connectionString: url,
    concurrency: workers,
    pollInterval: 500,
    log: (level, message) => {
      if (level === 'warning' && message.includes('chunk rolled back')) chunkRetries++;
      if (level === 'error' && /^Failed task/.test(message)) jobFailures++;
      if ((level === 'warning' || level === 'error') && messages.length < 20) messages.push(`${level}: ${message}`);
    },
  });
  try {
    await db.query('checkpoint');
    const t0 = process.hrtime.bigint();
    const {
      samples,
      waits,
      value: {
        peakRssMiB,
        value: { call, status },
      },
    } = await sampleWorkerWaits(url, () =>
      peakRss(async () => {
        const call = await timed(() => requestErasure(db, keys));
        for (;;) {
          const { rows } = await db.query<{ status: string }>('select status from pii.request_status($1::uuid)', [
            call.value,
          ]);
          const status = rows[0]!.status;
          if (status === 'done' || status === 'failed') return { call, status };
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    const requestId = call.value;
    const observed: WorkerObservation = {
      chunkRetries,
      jobFailures,
      messages,
      samples,
      waits,
    };
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const { rows } = await db.query<{
      created: Date;
      last_chunk: Date;
      finished: Date;
      chunks: string;
      residuals: number | null;
      rows_affected: Record<string, number>;
    }>(
      `select min(a.at) filter (where a.action = 'request_erasure') as created,
              max(a.at) filter (where a.action = 'erase_chunk') as last_chunk,
              max(a.at) filter (where a.action = 'request_finished') as finished,
              count(*) filter (where a.action = 'erase_chunk') as chunks,
              (select r.residual_count from pii.requests r where r.id = $1) as residuals,
              (select r.rows_affected from pii.requests r where r.id = $1) as rows_affected
         from pii.audit a where a.request_id = $1`,
      [requestId],
    );
    const a = rows[0]!;
    log(
      `request ${requestId}: ${status} in ${seconds.toFixed(2)} s (${a.chunks} chunks, ${workers} worker(s), peak RSS ${peakRssMiB.toFixed(0)} MiB)`,
    );
    log(
      `  worker: ` +
        `${chunkRetries} chunk retr${chunkRetries === 1 ? 'y' : 'ies'}, ${jobFailures} failed job run(s); ` +
        `sessions over ${samples} samples: ${Object.entries(waits)
          .sort((x, y) => y[1] - x[1])
          .map(([w, n]) => `${w} ${n}`)
          .join(', ')}`,
    );
    for (const m of messages) log(`  worker ${m}`);
    return {
      requestId,
      seconds,
      requestCallSeconds: call.seconds,
      erasingSeconds: (a.last_chunk.getTime() - a.created.getTime()) / 1000,
      finishingSeconds: (a.finished.getTime() - a.last_chunk.getTime()) / 1000,
      chunks: Number(a.chunks),
      status,
      residuals: a.residuals,
      rowsAffected: a.rows_affected,
      usedWorker: true,
      workers,
      peakRssMiB,
      observed,
    };
  } finally {
    await worker.stop();
  }
}

export interface VerifyResult {
  /** pii.verify_erasure of the whole request, on demand (after the request is done). */
  samples: number[];
  median: number;
  residuals: number;
  /**
   * The verification the request path itself does: each chunk checks its subjects right
   * after erasing them (pii_internal.chunk_residuals); seconds summed over the chunks, per run.
   */
  chunkSamples: number[];
  chunkMedian: number;
  chunks: number;
  /** Tables the chunks' DELETE proofs leave out of their check (as in the worker). */
  provenDeleted?: string[];
  /** Tables the chunks' UPDATE proofs leave out of their check (as in the worker). */
  provenUpdated?: string[];
}

/**
 * Item 3: verification of the committed request (read-only, so simply repeated): per chunk
 * as the chunks do it (the same subjects in slices of pii.settings.chunk_size, timed and
 * summed), and the whole request on demand with pii.verify_erasure.
 */
export async function benchVerify(
  db: pg.Client,
  requestId: string,
  keys: string[],
  runs: number,
  log: (s: string) => void,
): Promise<VerifyResult> {
  const { rows: cfg } = await db.query<{ size: number; mode: string; kind: string }>(
    `select s.chunk_size as size, r.mode, coalesce(r.kind, (pii_internal.subject_kind(null)).kind) as kind
       from pii.settings s, pii.requests r where r.id = $1`,
    [requestId],
  );
  const { size, mode, kind } = cfg[0]!;
  const chunks: unknown[][] = [];
  for (let i = 0; i < keys.length; i += size) {
    const { rows } = await db.query<{ k: string[]; s: (string | null)[]; h: Buffer[]; p: (string | null)[] }>(
      `select array_agg(subject_key) as k, array_agg(scope) as s, array_agg(subject_hash) as h, array_agg(pseudonym) as p
         from pii_internal.resolve_subjects($1::text[], kind => $2)`,
      [keys.slice(i, i + size), kind],
    );
    chunks.push([requestId, mode, kind, rows[0]!.k, rows[0]!.s, rows[0]!.h, rows[0]!.p]);
  }
  // The worker's chunk leaves out of its check the tables whose DELETE and UPDATE it proves
  // complete (pii_internal.proven_deleted and proven_updated of the counters taken before its
  // erasure): the same sets here, taken with nothing written in between (no statement, no
  // row), so this times the checks the worker runs.
  const { rows: proof } = await db.query<{ deleted: string[]; updated: string[] }>(
    `select coalesce(pii_internal.proven_deleted(pii_internal.delete_proof_state($1, $2))::text[], '{}') as deleted,
            coalesce(pii_internal.proven_updated(pii_internal.update_proof_state($1, $2), '{}', '{}')::text[], '{}') as updated`,
    [mode, kind],
  );
  const provenDeleted = proof[0]!.deleted;
  const provenUpdated = proof[0]!.updated;
  const samples: number[] = [];
  const chunkSamples: number[] = [];
  let residuals = 0;
  for (let i = 0; i < runs; i++) {
    let chunkSeconds = 0;
    let chunkResiduals = 0;
    for (const params of chunks) {
      const c = await timed(() =>
        db.query<{ n: string }>(
          'select pii_internal.chunk_residuals($1, $2, $3, $4::text[], $5::text[], $6::bytea[], $7::text[], $8::regclass[]) as n',
          [...params, [...provenDeleted, ...provenUpdated]],
        ),
      );
      chunkSeconds += c.seconds;
      chunkResiduals += Number(c.value.rows[0]!.n);
    }
    chunkSamples.push(chunkSeconds);
    const r = await timed(() =>
      db.query<{ n: string }>('select count(*) as n from pii.verify_erasure($1::uuid)', [requestId]),
    );
    residuals = Number(r.value.rows[0]!.n);
    samples.push(r.seconds);
    log(
      `verify ${i + 1}/${runs}: per chunk ${chunkSeconds.toFixed(2)} s over ${chunks.length} chunk(s) (${chunkResiduals} residual(s); ` +
        `proven, not checked: deleted ${provenDeleted.join(', ') || 'none'}; updated ${provenUpdated.join(', ') || 'none'}), ` +
        `pii.verify_erasure ${r.seconds.toFixed(2)} s, ${residuals} residual(s)`,
    );
  }
  return {
    samples,
    median: median(samples),
    residuals,
    chunkSamples,
    chunkMedian: median(chunkSamples),
    chunks: chunks.length,
    provenDeleted,
    provenUpdated,
  };
}

export interface SingleResult {
  subjects: number;
  /** pg_stat_statements over 20 single-subject pii.erase_subjects calls (where the fixed cost goes). */
  statements: StatementStat[];
  profiledCalls: number;
  lethe: { p50: number; p95: number; samples: number[] };
  hand: { p50: number; p95: number; samples: number[] };
}

/** Item 4: one subject at a time, each erasure in its own rolled-back transaction, sides alternating. */
export async function benchSingle(
  db: pg.Client,
  keys: string[],
  pgss: boolean,
  log: (s: string) => void,
): Promise<SingleResult> {
  const lethe: number[] = [];
  const hand: number[] = [];
  const one = async (method: 'lethe' | 'hand', key: string) => {
    await db.query('begin');
    try {
      const { seconds } = await timed(() =>
        method === 'lethe'
          ? db.query({ name: 'single_lethe', text: 'select * from pii.erase_subjects($1::text[])', values: [[key]] })
          : db.query({ name: 'single_hand', text: HAND_ONE_STATEMENT, values: [[key]] }),
      );
      (method === 'lethe' ? lethe : hand).push(seconds);
    } finally {
      await db.query('rollback');
    }
  };
  // Warm both paths (plans, caches) on a subject that is not measured.
  await one('lethe', keys[0]!);
  await one('hand', keys[0]!);
  lethe.length = 0;
  hand.length = 0;
  for (let i = 1; i < keys.length; i++) {
    for (const m of roundOrder(['lethe', 'hand'] as const, i)) await one(m, keys[i]!);
  }
  const summary = (xs: number[]) => ({ p50: quantile(xs, 0.5), p95: quantile(xs, 0.95), samples: xs });
  const profiled = keys.slice(1, 21);
  const { statements } = await profileStatements(
    db,
    pgss,
    async () => {
      for (const k of profiled) {
        await db.query('begin');
        try {
          await db.query('select * from pii.erase_subjects($1::text[])', [[k]]);
        } finally {
          await db.query('rollback');
        }
      }
    },
    12,
  );
  const result = {
    subjects: keys.length - 1,
    lethe: summary(lethe),
    hand: summary(hand),
    statements,
    profiledCalls: profiled.length,
  };
  log(
    `single subject over ${result.subjects}: lethe p50 ${(result.lethe.p50 * 1000).toFixed(2)} ms p95 ${(result.lethe.p95 * 1000).toFixed(2)} ms; ` +
      `hand p50 ${(result.hand.p50 * 1000).toFixed(2)} ms p95 ${(result.hand.p95 * 1000).toFixed(2)} ms`,
  );
  return result;
}
