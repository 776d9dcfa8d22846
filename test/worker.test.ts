// runWorker and the lethe_process_request task with a real graphile-worker: failures
// retried and, on the last attempt, recorded on the request; a graceful stop between
// chunks that the next worker resumes; jobs left locked by a dead worker re-queued at
// start; the erasure_completed hook.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLethe, type Lethe, type LetheWorker, runWorker } from '../src/api/index.js';
import { loadFixture, requestErasureWithOneAttempt } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let lethe: Lethe;
const workers: LetheWorker[] = [];
const logs: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('worker');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  // Switches the tests flip: make the erasure of loyalty rows fail, or slow.
  await db.query(`
    create table app.switches (fail boolean not null, sleep_ms int not null);
    insert into app.switches values (false, 0);
    create function app.loyalty_switch() returns trigger language plpgsql as $$
    declare s app.switches;
    begin
      select * into s from app.switches;
      if s.fail then raise exception 'loyalty ledger is locked for audit'; end if;
      perform pg_sleep(s.sleep_ms / 1000.0);
      return null;
    end $$;
    create trigger loyalty_switch before delete on app.loyalty_points for each statement execute function app.loyalty_switch();`);
  lethe = createLethe({ connectionString: db.url });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await db.query(`update app.switches set fail = false, sleep_ms = 0`);
});
afterAll(async () => {
  await lethe?.close();
  await db?.drop();
});

async function start(opts: Partial<Parameters<typeof runWorker>[0]> = {}): Promise<LetheWorker> {
  const w = await runWorker({
    connectionString: db.url,
    pollInterval: 100,
    log: (level, m) => logs.push(`${level}: ${m}`),
    ...opts,
  });
  workers.push(w);
  return w;
}

async function job(requestId: string) {
  const { rows } = await db.query(
    `select attempts, max_attempts, last_error, locked_at from graphile_worker._private_jobs where key = $1`,
    [`lethe:request:${requestId}`],
  );
  return rows[0];
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out; last value ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

/** Until the requests are finished: the most chunks (process_request_chunk calls) seen active at once. */
async function mostChunksAtOnce(ids: string[]): Promise<number> {
  let most = 0;
  await until(
    async () => {
      const { rows } = await db.query(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and state = 'active' and query like '%process_request_chunk%'
            and pid <> pg_backend_pid()`,
      );
      most = Math.max(most, rows[0].n);
      return Promise.all(ids.map(async (id) => (await lethe.getRequest(id)).status));
    },
    (statuses) => statuses.every((s) => s === 'done' || s === 'failed'),
  );
  return most;
}

describe('failures', () => {
  it('retries a failing chunk and leaves the request open while attempts remain', async () => {
    await db.query(`update app.switches set fail = true`);
    const id = await lethe.requestErasure(['30']);
    await start();
    const j = await until(
      () => job(id),
      (x) => x?.attempts >= 1 && x.locked_at === null,
    );
    // The application's message is withheld (it could quote anyone); its SQLSTATE and table are kept.
    expect(j.last_error).toMatch(/SQLSTATE P0001/);
    expect(j.last_error).not.toMatch(/loyalty ledger/);
    expect((await lethe.getRequest(id)).status).not.toBe('failed');

    // Fixed: the retry (brought forward) completes it.
    await db.query(`update app.switches set fail = false`);
    await db.query(`update graphile_worker._private_jobs set run_at = now() where key = $1`, [`lethe:request:${id}`]);
    expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
  });

  it('on the last attempt records the failure on the request and its items; retryRequest recovers', async () => {
    await db.query(`update app.switches set fail = true`);
    await start();
    const id = await requestErasureWithOneAttempt(db, ['31', '32']);
    const failed = await lethe.waitForRequest(id, { timeoutMs: 30_000 });
    expect(failed).toMatchObject({
      status: 'failed',
      failed: 2,
      error: expect.stringMatching(/erasure failed: SQLSTATE P0001.*message hmac [0-9a-f]{16}/),
    });
    expect((await lethe.getRequestItems(id)).map((i) => i.status)).toEqual(['failed', 'failed']);
    expect(
      logs.some((l) => l.startsWith('error:') && l.includes(`request ${id}: failed for good after 1 attempt(s)`)),
    ).toBe(true);

    await db.query(`update app.switches set fail = false`);
    await lethe.retryRequest(id);
    expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
  });

  it('runs a chunk again at once when it fails with a serialization failure (40001): the request completes in one attempt, counted once', async () => {
    // The first erasure of loyalty rows fails with 40001, as a SERIALIZABLE conflict would
    // (a sequence, since the failed transaction rolls everything else back).
    await db.query(`
      create sequence app.serialization_failures;
      create function app.fail_once() returns trigger language plpgsql as $$
      begin
        if nextval('app.serialization_failures') = 1 then
          raise exception 'could not serialize access' using errcode = '40001';
        end if;
        return null;
      end $$;
      create trigger fail_once before delete on app.loyalty_points for each statement execute function app.fail_once();`);
    try {
      await start();
      const id = await requestErasureWithOneAttempt(db, ['34']);
      const done = await lethe.waitForRequest(id, { timeoutMs: 30_000 });
      expect(done).toMatchObject({ status: 'done', total: 1, matched: 1, erased: 1, failed: 0 });
      expect((await db.query(`select last_value::int as n from app.serialization_failures`)).rows[0].n).toBe(2);
      expect(
        (await db.query(`select count(*)::int as n from app.loyalty_points where customer_id = 34`)).rows[0].n,
      ).toBe(0);
      const { rows } = await db.query(
        `select count(*)::int as n from pii.audit where request_id = $1 and action = 'erase_chunk'`,
        [id],
      );
      expect(rows[0].n).toBe(1);
      expect(logs.some((l) => l.includes(`request ${id}: chunk rolled back (SQLSTATE 40001)`))).toBe(true);
    } finally {
      await db.query(
        `drop trigger fail_once on app.loyalty_points; drop function app.fail_once(); drop sequence app.serialization_failures`,
      );
    }
  });

  it('drops a job whose payload has no request id instead of retrying it', async () => {
    await start();
    await db.query(
      `select graphile_worker.add_job('lethe_process_request', '{"requestId": "42"}'::json, job_key => 'bogus')`,
    );
    await until(
      () => db.query(`select count(*)::int as n from graphile_worker._private_jobs where key = 'bogus'`),
      (r) => r.rows[0].n === 0,
    );
    expect(logs.some((l) => /payload has no valid requestId; dropped/.test(l))).toBe(true);
  });
});

describe('stop and resume', () => {
  it('runWorker with concurrency 2 processes two chunks of one request at once', async () => {
    await db.query(`update app.switches set sleep_ms = 300`);
    const keys = Array.from({ length: 6 }, (_, i) => String(70 + i));
    const id = await lethe.requestErasure(keys);
    await start({ chunkSize: 1, concurrency: 2 });
    const most = await mostChunksAtOnce([id]);
    expect(most).toBe(2);
    expect(await lethe.getRequest(id)).toMatchObject({ status: 'done', erased: 6, failed: 0 });
  });

  it('with two requests open, concurrency 2 runs two chunks at once in all, not two per request', async () => {
    await db.query(`update app.switches set sleep_ms = 300`);
    const first = await lethe.requestErasure(['80', '81', '82']);
    const second = await lethe.requestErasure(['83', '84', '85']);
    await start({ chunkSize: 1, concurrency: 2 });
    expect(await mostChunksAtOnce([first, second])).toBe(2);
    expect(await lethe.getRequest(first)).toMatchObject({ status: 'done', erased: 3, failed: 0 });
    expect(await lethe.getRequest(second)).toMatchObject({ status: 'done', erased: 3, failed: 0 });
  });

  it('stops between chunks on stop(); the next worker finishes the request', async () => {
    await db.query(`update app.switches set sleep_ms = 150`);
    const keys = Array.from({ length: 30 }, (_, i) => String(40 + i));
    const id = await lethe.requestErasure(keys);
    const w = await start({ chunkSize: 1 });
    await until(
      () => lethe.getRequest(id),
      (s) => s.erased >= 2,
    );
    await w.stop();
    const mid = await lethe.getRequest(id);
    expect(mid.status).toBe('running');
    expect(mid.erased).toBeGreaterThan(0);
    expect(mid.erased).toBeLessThan(30);
    // Every processed chunk is whole: a subject is either untouched or fully erased.
    const { rows } = await db.query(
      `select count(*)::int as n from app.customers c where c.id between 40 and 69 and c.email is null
         and exists (select from app.loyalty_points l where l.customer_id = c.id)`,
    );
    expect(rows[0].n).toBe(0);
    expect((await job(id))?.locked_at ?? null).toBeNull();

    await db.query(`update app.switches set sleep_ms = 0`);
    await start();
    const done = await lethe.waitForRequest(id, { timeoutMs: 30_000 });
    expect(done).toMatchObject({ status: 'done', erased: 30 });
  });

  it('re-queues at start the request of a worker that died holding its job', async () => {
    const id = await lethe.requestErasure(['70']);
    // A dead worker's lock: graphile-worker would leave it alone for 4 hours.
    await db.query(
      `update graphile_worker._private_jobs set locked_at = now(), locked_by = 'dead-worker' where key = $1`,
      [`lethe:request:${id}`],
    );
    const w = await start();
    expect(typeof w.resumed).toBe('number');
    expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
    // The dead worker's job was superseded (key moved to a fresh job), not left to run again.
    const { rows } = await db.query(
      `select count(*)::int as n from graphile_worker._private_jobs where locked_by = 'dead-worker' and key is not null`,
    );
    expect(rows[0].n).toBe(0);
  });
});

describe('erasure_completed hook', () => {
  it('runs a handler passed in tasks with ids and counts only (the handler turns pii.settings.erasure_completed_jobs on)', async () => {
    const seen: unknown[] = [];
    await db.query(`update pii.settings set erasure_completed_jobs = false`);
    logs.length = 0;
    await start({ tasks: { erasure_completed: async (payload) => void seen.push(payload) } });
    expect((await db.query(`select erasure_completed_jobs as on from pii.settings`)).rows).toEqual([{ on: true }]);
    expect(logs).toContain('info: erasure_completed jobs turned on (pii.settings.erasure_completed_jobs)');
    const id = await lethe.requestErasure(['71', '72', '999999']);
    await lethe.waitForRequest(id, { timeoutMs: 30_000 });
    await until(
      async () => seen.length,
      (n) => n > 0 && seen.some((p) => (p as { requestId: string }).requestId === id),
    );
    expect(seen.find((p) => (p as { requestId: string }).requestId === id)).toEqual({
      requestId: id,
      status: 'done',
      total: 3,
      matched: 2,
      erased: 2, // subjects erased, not the unmatched key
      failed: 0,
      residuals: 0,
    });
  });
});

describe('runWorker start', () => {
  it.each([
    ['the default crontab', {}],
    ['no crontab', { crontab: '' }],
  ])('logs no error, warning or crontab message with %s', async (_label, opts) => {
    logs.length = 0;
    const w = await start(opts);
    await until(
      async () => logs.filter((l) => l.includes('looking for jobs')).length,
      (n) => n > 0,
    );
    await w.stop();
    expect(logs.filter((l) => /^(error|warning):|crontab/i.test(l))).toEqual([]);
  });
});
