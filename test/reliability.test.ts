// Reliability with real worker processes (`lethe worker`), real SIGKILLs and real
// concurrency: a 50k-subject request survives 10 kills in a row with every chunk all or
// nothing, and 4 workers on 50 overlapping requests erase each subject exactly once.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

/** crm.sql registered, plus `customers` bulk subjects (ids 11 .. customers + 10), loaded in one session. */
async function loadBulkCrm(db: TestDatabase, customers: number): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query(fixture('crm.sql'));
    await client.query(fixture('crm_register.sql'));
    await client.query(`select set_config('lethe_test.bulk_customers', $1, false)`, [String(customers)]);
    await client.query(fixture('requests_bulk.sql'));
  } finally {
    client.release();
  }
}

interface Worker {
  child: ChildProcess;
  log: string[];
  exited: Promise<number | null>;
}

const workers = new Set<Worker>();

function startWorker(url: string, chunkSize: number): Worker {
  // One process (no npx/tsx wrapper), so a SIGKILL kills the worker itself.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/index.ts', '--database-url', url, 'worker', '--chunk-size', String(chunkSize)],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DATABASE_URL: '' } },
  );
  const log: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
  const w: Worker = {
    child,
    log,
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ? null : code))),
  };
  workers.add(w);
  void w.exited.then(() => workers.delete(w));
  return w;
}

async function kill(w: Worker, signal: NodeJS.Signals): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill(signal);
  await w.exited;
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs: number,
  logs: () => string[] = () => [],
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)})\n${logs().slice(-30).join('\n')}`);
    await sleep(50);
  }
}

afterAll(async () => {
  for (const w of [...workers]) await kill(w, 'SIGKILL');
});

/**
 * One statement, one snapshot: subjects of the given keys whose rows are erased in some
 * registered tables and not in others, and items marked done versus subjects erased.
 */
async function atomicity(db: TestDatabase, requestId: string) {
  const { rows } = await db.query(
    `with subj as (
       select c.id, c.email is null and c.status = 'DEACTIVATED' as profile_erased,
              exists (select from app.orders o where o.customer_id = c.id and o.shipping_name is not null) as order_pii,
              exists (select from app.order_items i join app.orders o on o.id = i.order_id where o.customer_id = c.id and i.gift_message is not null) as item_pii,
              exists (select from app.events e where e.customer_id = c.id) as has_events,
              exists (select from app.loyalty_points l where l.customer_id = c.id) as has_loyalty
       from app.customers c
     )
     select
       (select count(*) from subj where profile_erased and (order_pii or item_pii or has_events or has_loyalty))::int as erased_profile_with_traces,
       (select count(*) from subj where not profile_erased and not (order_pii and item_pii and has_events and has_loyalty))::int as intact_profile_missing_rows,
       (select count(*) from subj where profile_erased)::int as erased_subjects,
       (select count(*) from pii_internal.request_items where request_id = $1 and status = 'done' and matched)::int as items_done_matched,
       (select count(*) from pii_internal.request_items where request_id = $1 and status = 'done')::int as items_done,
       (select coalesce(sum((details ->> 'erased_now')::int), 0) from pii.audit where action = 'erase_chunk' and request_id = $1)::int as erased_now`,
    [requestId],
  );
  return rows[0] as {
    erased_profile_with_traces: number;
    intact_profile_missing_rows: number;
    erased_subjects: number;
    items_done_matched: number;
    items_done: number;
    erased_now: number;
  };
}

describe('a 50k-subject request and a worker SIGKILLed 10 times in a row', () => {
  const SUBJECTS = 50_000;
  const CHUNK = 1000;
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('reliability_kill');
    await loadBulkCrm(db, SUBJECTS);
    // A backend whose client died notices it mid-query and aborts (PostgreSQL 14+), as with a
    // worker host that vanished; otherwise the server would finish the killed worker's chunk.
    await db.query(`alter database ${db.name} set client_connection_check_interval = '10ms'`);
  }, 120_000);
  afterAll(() => db?.drop());

  it('ends with every item done, verification empty and no subject half-erased', async () => {
    const total = SUBJECTS + 10;
    const t0 = Date.now();
    const { rows } = await db.query(
      `select pii.request_erasure(array(select g::text from generate_series(1, $1::int) g), source => 'kill-test') as id`,
      [total],
    );
    const id: string = rows[0].id;
    const tRequested = Date.now();
    const erased = async () =>
      Number((await db.query('select erased from pii.requests where id = $1', [id])).rows[0].erased);

    const kills: { at: number; done: number; rolledBack: boolean }[] = [];
    const workerBackends = async () =>
      (
        await db.query(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'lethe-worker'`,
        )
      ).rows[0].n as number;
    const chunkInFlight = async () =>
      (
        await db.query(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active' and query like '%process_request_chunk%' and pid <> pg_backend_pid()`,
        )
      ).rows[0].n as number;
    let last = 0;
    for (let k = 0; k < 10; k++) {
      const w = startWorker(db.url, CHUNK);
      // Let it commit at least one chunk, then kill it inside the next one.
      last = await waitFor(
        `progress after restart ${k}`,
        erased,
        (n) => n > last,
        60_000,
        () => w.log,
      );
      await waitFor(
        `a chunk in flight after restart ${k}`,
        chunkInFlight,
        (n) => n > 0,
        10_000,
        () => w.log,
      );
      await sleep(Math.floor(Math.random() * 100));
      const before = await erased();
      const inFlight = (await chunkInFlight()) > 0;
      await kill(w, 'SIGKILL');
      await waitFor(`the killed worker's sessions to end (kill ${k + 1})`, workerBackends, (n) => n === 0, 10_000);
      const a = await atomicity(db, id);
      kills.push({ at: Date.now() - t0, done: a.items_done, rolledBack: inFlight && a.items_done === before });
      expect(a, `after kill ${k + 1}`).toMatchObject({ erased_profile_with_traces: 0, intact_profile_missing_rows: 0 });
      expect(a.items_done_matched, `after kill ${k + 1}: items done vs subjects erased`).toBe(a.erased_subjects);
      expect(a.erased_now, `after kill ${k + 1}: erase_chunk audit vs items done`).toBe(a.items_done);
      expect(a.items_done % CHUNK, `after kill ${k + 1}: only whole chunks are done`).toBe(0);
      last = Math.max(last, await erased());
    }
    // The kills did land inside chunks, whose work was rolled back.
    expect(kills.filter((x) => x.rolledBack).length).toBeGreaterThan(0);
    expect(last).toBeLessThan(total); // the kills happened in the middle, not after the end

    const finalWorker = startWorker(db.url, CHUNK);
    const s = await waitFor(
      'the request to finish',
      async () => (await db.query('select * from pii.request_status($1)', [id])).rows[0],
      (r) => r.status === 'done' || r.status === 'failed',
      90_000,
      () => finalWorker.log,
    );
    const tDone = Date.now();
    await kill(finalWorker, 'SIGTERM');

    expect(s).toMatchObject({
      status: 'done',
      total: String(total),
      matched: String(total),
      erased: String(total),
      failed: '0',
      residual_count: 0,
      error: null,
    });
    expect((await db.query('select * from pii.verify_erasure($1)', [id])).rows).toEqual([]);
    const { rows: items } = await db.query(
      `select status, count(*)::int as n from pii_internal.request_items where request_id = $1 group by 1`,
      [id],
    );
    expect(items).toEqual([{ status: 'done', n: total }]);
    const a = await atomicity(db, id);
    expect(a).toEqual({
      erased_profile_with_traces: 0,
      intact_profile_missing_rows: 0,
      erased_subjects: total,
      items_done_matched: total,
      items_done: total,
      erased_now: total, // each subject erased once, kills notwithstanding
    });
    const { rows: left } = await db.query(
      `select (select count(*) from app.events)::int as events, (select count(*) from app.loyalty_points)::int as loyalty,
              (select count(*) from app.orders where shipping_name is not null or shipping_address is not null)::int as order_pii`,
    );
    expect(left[0]).toEqual({ events: 0, loyalty: 0, order_pii: 0 });

    console.log(
      `[reliability] ${total} subjects, chunk ${CHUNK}: request_erasure ${((tRequested - t0) / 1000).toFixed(1)} s; ` +
        `10 SIGKILLs (at s/items done: ${kills.map((x) => `${(x.at / 1000).toFixed(1)}/${x.done}`).join(', ')}), ` +
        `${kills.filter((x) => x.rolledBack).length} rolled back a chunk in flight; ` +
        `done ${((tDone - t0) / 1000).toFixed(1)} s after the request`,
    );
  }, 240_000);
});

describe('4 worker processes, 50 overlapping requests with shared subjects', () => {
  const SUBJECTS = 5000;
  const REQUESTS = 50;
  const PER_REQUEST = 300;
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('reliability_overlap');
    await loadBulkCrm(db, SUBJECTS);
  }, 120_000);
  afterAll(() => db?.drop());

  it('erases each subject exactly once, finishes every request, and no deadlock reaches a request', async () => {
    // Deterministic overlap: request r names PER_REQUEST subjects from a pool of SUBJECTS + 10.
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const ids: string[] = [];
    const named = new Set<number>();
    for (let r = 0; r < REQUESTS; r++) {
      const keys = new Set<number>();
      while (keys.size < PER_REQUEST) keys.add(1 + Math.floor(rand() * (SUBJECTS + 10)));
      for (const k of keys) named.add(k);
      const { rows } = await db.query(`select pii.request_erasure($1::text[], source => 'overlap') as id`, [
        [...keys].map(String),
      ]);
      ids.push(rows[0].id);
    }
    expect(named.size).toBeLessThan(REQUESTS * PER_REQUEST); // they do overlap

    const t0 = Date.now();
    const pool = Array.from({ length: 4 }, () => startWorker(db.url, 100));
    const states = await waitFor(
      'all requests to finish',
      async () =>
        (
          await db.query(
            `select status, count(*)::int as n from pii.requests where source = 'overlap' group by 1 order by 1`,
          )
        ).rows,
      (rows) => rows.length === 1 && rows[0].status !== 'queued' && rows[0].status !== 'running',
      90_000,
      () => pool.flatMap((w) => w.log),
    );
    const tDone = Date.now();
    await Promise.all(pool.map((w) => kill(w, 'SIGTERM')));
    expect(states).toEqual([{ status: 'done', n: REQUESTS }]);

    const { rows: req } = await db.query(
      `select count(*) filter (where error is null and failed = 0 and residual_count = 0 and erased = total)::int as clean from pii.requests where id = any ($1)`,
      [ids],
    );
    expect(req[0].clean).toBe(REQUESTS);
    // Exactly once: the chunks' erased_now add up to the distinct subjects, and each item points at
    // the request that erased its subject, which is one that named it.
    const { rows: once } = await db.query(
      `select (select sum((details ->> 'erased_now')::int) from pii.audit where action = 'erase_chunk' and request_id = any ($1))::int as erased_now,
              (select count(distinct subject_hash) from pii_internal.request_items where request_id = any ($1))::int as distinct_subjects,
              (select count(*) from pii_internal.request_items i join pii_internal.tombstones t using (subject_hash)
                where i.request_id = any ($1) and (i.erased_by is distinct from t.request_id or t.erased_at is null))::int as inconsistent,
              (select count(*) from pii_internal.tombstones t
                where t.request_id = any ($1) and not exists (select from pii_internal.request_items i where i.request_id = t.request_id and i.subject_hash = t.subject_hash))::int as erased_by_stranger`,
      [ids],
    );
    expect(once[0]).toEqual({
      erased_now: named.size,
      distinct_subjects: named.size,
      inconsistent: 0,
      erased_by_stranger: 0,
    });
    // Exactly the named subjects are erased, fully.
    const { rows: rowsLeft } = await db.query(
      `select count(*) filter (where email is null)::int as erased,
              count(*) filter (where email is null and id <> all ($1::bigint[]))::int as erased_unasked
       from app.customers`,
      [[...named]],
    );
    const existing = [...named].filter((k) => k <= SUBJECTS + 10).length;
    expect(rowsLeft[0]).toEqual({ erased: existing, erased_unasked: 0 });
    const { rows: half } = await db.query(
      `select count(*)::int as n from app.customers c
       where (c.email is null) <> not exists (select from app.events e where e.customer_id = c.id)
          or (c.email is null) <> not exists (select from app.orders o where o.customer_id = c.id and o.shipping_name is not null)`,
    );
    expect(half[0].n).toBe(0);

    const logs = pool.flatMap((w) => w.log);
    const retried = logs.filter((l) => /deadlock|failed with error|Failed task/i.test(l));
    console.log(
      `[reliability] 4 workers, ${REQUESTS} requests x ${PER_REQUEST} keys (${named.size} distinct subjects), chunk 100: ` +
        `all done in ${((tDone - t0) / 1000).toFixed(1)} s; ${retried.length} retried job attempt(s) in the worker logs`,
    );
  }, 180_000);
});
