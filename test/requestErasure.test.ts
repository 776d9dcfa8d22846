// pii.request_erasure and the request lifecycle on a real PostgreSQL: recorded and queued
// in the caller's transaction, idempotent, chunked, verified, announced; raw keys gone
// once processed; bad input refused with nothing written.
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('request_erasure');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
});
afterAll(() => db?.drop());

async function request(keys: string[], opts: Record<string, unknown> = {}): Promise<string> {
  const names = Object.keys(opts);
  const args = names.map((n, i) => `, ${n} => $${i + 2}`).join('');
  const { rows } = await db.query(`select pii.request_erasure($1::text[]${args}) as id`, [
    keys,
    ...names.map((n) => opts[n]),
  ]);
  return rows[0].id;
}

async function status(id: string) {
  return (await db.query('select * from pii.request_status($1)', [id])).rows[0];
}

/** Runs a request to the end the way the worker does: chunks until 0, then finish. */
async function processAll(id: string, chunk?: number): Promise<number[]> {
  const sizes: number[] = [];
  for (;;) {
    const { rows } = await db.query('select pii.process_request_chunk($1, $2) as n', [id, chunk ?? null]);
    sizes.push(rows[0].n);
    if (rows[0].n === 0) break;
  }
  await db.query('select pii.finish_request($1)', [id]);
  return sizes;
}

/** Row counts of everything a request writes. */
async function footprint() {
  const { rows } = await db.query(`
    select (select count(*) from pii.requests)::int as requests,
           (select count(*) from pii_internal.request_items)::int as items,
           (select count(*) from pii_internal.tombstones)::int as tombstones,
           (select count(*) from pii.audit)::int as audit,
           (select count(*) from graphile_worker._private_jobs)::int as jobs`);
  return rows[0] as { requests: number; items: number; tombstones: number; audit: number; jobs: number };
}

async function jobsOf(id: string) {
  const { rows } = await db.query(
    `select t.identifier, j.payload, j.key, j.max_attempts
     from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where j.payload ->> 'requestId' = $1 order by j.id`,
    [id],
  );
  return rows;
}

describe('recording a request', () => {
  it('returns a uuid, records the request and one item per subject, and queues exactly one job', async () => {
    const id = await request(['11', '12']);
    expect(id).toMatch(UUID);

    const s = await status(id);
    expect(s).toMatchObject({
      id,
      status: 'queued',
      mode: 'erase',
      source: 'api',
      total: '2',
      matched: '2',
      unmatched: '0',
      erased: '0',
      failed: '0',
    });
    expect(Number(s.progress)).toBe(0);

    const { rows: items } = await db.query('select * from pii.request_items($1)', [id]);
    expect(items).toHaveLength(2);
    expect(
      items.every((i) => i.status === 'pending' && i.matched === true && /^[0-9a-f]{64}$/.test(i.subject_hash)),
    ).toBe(true);

    expect(await jobsOf(id)).toEqual([
      { identifier: 'lethe_process_request', payload: { requestId: id }, key: `lethe:request:${id}`, max_attempts: 10 },
    ]);
  });

  it('is idempotent on request_key: the same id, no second request, item, job or audit row', async () => {
    const first = await request(['13'], { request_key: 'ticket-1812' });
    const before = await footprint();
    const again = await request(['13', '14', '15'], { request_key: 'ticket-1812', source: 'other' });
    expect(again).toBe(first);
    expect(await footprint()).toEqual(before);
    expect(await status(first)).toMatchObject({ total: '1', source: 'api' });
    expect(await jobsOf(first)).toHaveLength(1);
    // The key itself is kept only as a keyed hash.
    const { rows } = await db.query(
      `select request_key_hash is not null as hashed, position('ticket-1812' in t::text) as raw from pii.requests t where id = $1`,
      [first],
    );
    expect(rows[0]).toEqual({ hashed: true, raw: 0 });
    // A different key is a different request.
    expect(await request(['13'], { request_key: 'ticket-1813' })).not.toBe(first);
  });

  it("lives in the caller's transaction: rollback leaves no request, item, tombstone, job or audit row", async () => {
    const before = await footprint();
    const tasksBefore = (await db.query('select count(*)::int as n from graphile_worker._private_tasks')).rows[0].n;
    const client = await db.pool.connect();
    let id: string;
    try {
      await client.query('begin');
      id = (await client.query(`select pii.request_erasure(array['14', '9014']) as id`)).rows[0].id;
      // Inside the transaction everything is there...
      const inside = await client.query(
        `select (select count(*) from pii_internal.request_items where request_id = $1)::int as items,
                (select count(*) from graphile_worker.jobs where key = 'lethe:request:' || $1)::int as jobs`,
        [id],
      );
      expect(inside.rows[0]).toEqual({ items: 2, jobs: 1 });
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect(await footprint()).toEqual(before);
    expect((await db.query('select count(*)::int as n from graphile_worker._private_tasks')).rows[0].n).toBe(
      tasksBefore,
    );
    await expectPgError(db.query('select * from pii.request_status($1)', [id!]), '42704', /does not exist/);
    const { rows } = await db.query(`select erased, flagged_at from pii.was_erased('14')`);
    expect(rows[0]).toEqual({ erased: false, flagged_at: null });
  });

  it('counts one item per distinct subject (keys canonicalised), duplicates, matched and unmatched at creation', async () => {
    const before = await footprint();
    const id = await request(['15', '15', ' 15', '016', '+16', '9001', '9002', '9001']);
    expect(await status(id)).toMatchObject({ total: '4', duplicates: '4', matched: '2', unmatched: '2' });
    const after = await footprint();
    expect(after.requests - before.requests).toBe(1);
    expect(after.items - before.items).toBe(4);
    const { rows } = await db.query(
      'select matched, count(*)::int as n from pii.request_items($1) group by 1 order by 1',
      [id],
    );
    expect(rows).toEqual([
      { matched: false, n: 2 },
      { matched: true, n: 2 },
    ]);
  });

  it('flags its subjects at once: tombstones exist and was_erased says flagged, not yet erased', async () => {
    const id = await request(['17', '9017']);
    for (const key of ['17', '9017', ' 17']) {
      const { rows } = await db.query('select * from pii.was_erased($1)', [key]);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ erased: false, erased_at: null, request_id: id });
      expect(rows[0].flagged_at).toBeInstanceOf(Date);
    }
    const { rows: t } = await db.query(
      'select count(*)::int as n from pii_internal.tombstones where request_id = $1 and erased_at is null',
      [id],
    );
    expect(t[0].n).toBe(2);
    // Guards act before the worker ran: a new event of subject 17 carrying the email is scrubbed.
    await db.query(
      `insert into app.events (customer_id, occurred_at, kind, payload)
       values (17, '2026-10-05', 'signup', '{"email": "user17@example.com"}'), (18, '2026-10-05', 'signup', '{"email": "user18@example.com"}')`,
    );
    const { rows: ev } = await db.query(`select customer_id from app.events where kind = 'signup' order by 1`);
    expect(ev).toEqual([{ customer_id: '18' }]);
    // Not erased yet: the profile still holds its PII until the request is processed.
    const { rows: c } = await db.query('select email from app.customers where id = 17');
    expect(c[0].email).toBe('user17@example.com');
  });

  it('due_at is 24 h after the request by default, per request when given, and follows pii.settings.default_due', async () => {
    const id = await request(['19']);
    const { rows } = await db.query(
      `select extract(epoch from due_at - requested_at)::int as s from pii.requests where id = $1`,
      [id],
    );
    expect(rows[0].s).toBe(24 * 3600);

    const due = new Date(Date.now() + 3 * 3600_000);
    const custom = await request(['19'], { due_at: due.toISOString() });
    expect((await status(custom)).due_at.getTime()).toBe(due.getTime());

    await db.query(`update pii.settings set default_due = interval '30 days'`);
    try {
      const later = await request(['19']);
      const { rows: r2 } = await db.query(
        `select extract(epoch from due_at - requested_at)::int as s from pii.requests where id = $1`,
        [later],
      );
      expect(r2[0].s).toBe(30 * 24 * 3600);
    } finally {
      await db.query(`update pii.settings set default_due = interval '24 hours'`);
    }
  });

  it('lists open requests past their due date in pii.overdue_requests, and only those', async () => {
    const late = await request(['20'], { due_at: new Date(Date.now() - 3600_000).toISOString(), source: 'sla-test' });
    const onTime = await request(['20'], { source: 'sla-test' });
    const { rows } = await db.query(
      `select request_id, status, overdue_by > interval '59 minutes' as overdue from pii.overdue_requests where source = 'sla-test'`,
    );
    expect(rows).toEqual([{ request_id: late, status: 'queued', overdue: true }]);
    expect(rows.map((r) => r.request_id)).not.toContain(onTime);
    // Done requests are no longer overdue.
    await processAll(late);
    const { rows: after } = await db.query(`select request_id from pii.overdue_requests where request_id = $1`, [late]);
    expect(after).toEqual([]);
  });
});

describe('processing', () => {
  it('processes in chunks (2, 2, 1, 0 for five subjects with chunk 2), with progress going up', async () => {
    const id = await request(['21', '22', '23', '24', '25']);
    const seen: { n: number; status: string; erased: string; progress: number }[] = [];
    for (;;) {
      const { rows } = await db.query('select pii.process_request_chunk($1, 2) as n', [id]);
      const s = await status(id);
      seen.push({ n: rows[0].n, status: s.status, erased: s.erased, progress: Number(s.progress) });
      if (rows[0].n === 0) break;
    }
    expect(seen).toEqual([
      { n: 2, status: 'running', erased: '2', progress: 0.4 },
      { n: 2, status: 'running', erased: '4', progress: 0.8 },
      { n: 1, status: 'running', erased: '5', progress: 1 },
      { n: 0, status: 'running', erased: '5', progress: 1 },
    ]);
    // Each chunk is erased for real and leaves the others alone.
    const { rows } = await db.query(
      `select count(*) filter (where email is null and status = 'DEACTIVATED')::int as erased,
              count(*) filter (where email = 'user' || id || '@example.com')::int as intact
       from app.customers where id between 21 and 26`,
    );
    expect(rows[0]).toEqual({ erased: 5, intact: 1 });
    const { rows: started } = await db.query(
      'select started_at is not null as s, finished_at is null as f from pii.requests where id = $1',
      [id],
    );
    expect(started[0]).toEqual({ s: true, f: true });
  });

  it('skips items another chunk holds (FOR UPDATE SKIP LOCKED) instead of waiting', async () => {
    const id = await request(['26', '27', '28', '29']);
    await db.query('select pii.process_request_chunk($1, 1)', [id]); // the request is running now
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    try {
      await a.query('begin');
      expect((await a.query('select pii.process_request_chunk($1, 2) as n', [id])).rows[0].n).toBe(2);
      // b claims the one item a does not hold (its progress update then waits for a's commit).
      const bChunk = b.query('select pii.process_request_chunk($1, 2) as n', [id]);
      await sleep(300);
      const { rows: waiting } = await db.query(
        `select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
         where not l.granted and c.relname = 'request_items'`,
      );
      expect(waiting[0].n).toBe(0);
      await a.query('commit');
      expect((await bChunk).rows[0].n).toBe(1);
    } finally {
      a.release();
      b.release();
    }
    expect(await processAll(id)).toEqual([0]);
    expect(await status(id)).toMatchObject({ status: 'done', erased: '4', residual_count: 0 });
  });

  it('finish_request verifies and completes: done, verified_at set, residual_count 0, no raw key left in the items', async () => {
    const id = await request(['30', '31', '9030']);
    // Not finished while items are pending.
    expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('queued');
    expect(await processAll(id, 2)).toEqual([2, 1, 0]);
    const s = await status(id);
    expect(s).toMatchObject({
      status: 'done',
      total: '3',
      matched: '2',
      unmatched: '1',
      erased: '2', // subjects erased: the unmatched key is not one
      failed: '0',
      residual_count: 0,
      error: null,
    });
    expect(Number(s.progress)).toBe(1);
    expect(s.verified_at).toBeInstanceOf(Date);
    expect(s.finished_at).toBeInstanceOf(Date);
    expect(s.rows_affected).toMatchObject({
      'app.customers': 2,
      'app.events': 8,
      'app.orders': 4,
      'app.loyalty_points': 6,
    });
    const { rows } = await db.query(
      `select count(*)::int as n, count(*) filter (where subject_key is null and scope is null and status = 'done' and erased_by = request_id)::int as clean
       from pii_internal.request_items where request_id = $1`,
      [id],
    );
    expect(rows[0]).toEqual({ n: 3, clean: 3 });
    expect((await db.query('select * from pii.verify_erasure($1)', [id])).rows).toEqual([]);
    const { rows: t } = await db.query(`select erased, request_id from pii.was_erased('30')`);
    expect(t[0]).toEqual({ erased: true, request_id: id });
    // Idempotent: finishing again changes nothing and queues nothing more.
    const jobs = (await jobsOf(id)).length;
    expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');
    expect(await jobsOf(id)).toHaveLength(jobs);
  });

  it('announces the end: NOTIFY pii_erasure with ids and counts only; no erasure_completed job unless opted in', async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const received: { channel: string; payload?: string }[] = [];
    listener.on('notification', (n) => received.push({ channel: n.channel, payload: n.payload }));
    await listener.query('listen pii_erasure');
    try {
      const id = await request(['32', '9032']);
      await processAll(id);
      for (let i = 0; i < 50 && !received.some((r) => r.payload?.includes(id)); i++) await sleep(50);
      const mine = received.filter((r) => r.payload?.includes(id));
      expect(mine).toHaveLength(1);
      expect(JSON.parse(mine[0]!.payload!)).toEqual({
        requestId: id,
        status: 'done',
        total: 2,
        matched: 1,
        erased: 1, // the unmatched key is not an erased subject
        failed: 0,
        residuals: 0,
      });
      expect(mine[0]!.payload!.replace(id, '')).not.toMatch(/32|example/);

      // Nothing handles erasure_completed by default: no job is left to pile up.
      expect((await jobsOf(id)).map((j) => j.identifier)).toEqual(['lethe_process_request']);
    } finally {
      await listener.end();
    }
  });

  it('pii.settings.erasure_completed_jobs: one erasure_completed job per finished request, none queued before the opt-in', async () => {
    const completedJobs = async () =>
      (
        await db.query(`select count(*)::int as n from graphile_worker._private_jobs j
                        join graphile_worker._private_tasks t on t.id = j.task_id where t.identifier = 'erasure_completed'`)
      ).rows[0].n as number;
    const before = await request(['61']);
    await processAll(before);
    expect(await completedJobs()).toBe(0);
    await db.query(`update pii.settings set erasure_completed_jobs = true`);
    try {
      const a = await request(['62']);
      const b = await request(['63', '9063']);
      await processAll(a);
      await processAll(b);
      expect(await db.query('select pii.finish_request($1) as s', [a])).toMatchObject({ rows: [{ s: 'done' }] });
      expect(await completedJobs()).toBe(2);
      for (const id of [a, b]) {
        const jobs = await jobsOf(id);
        expect(jobs.map((j) => j.identifier)).toEqual(['lethe_process_request', 'erasure_completed']);
        expect(jobs[1]).toMatchObject({ key: `lethe:completed:${id}`, payload: { requestId: id, status: 'done' } });
      }
      expect((await jobsOf(before)).map((j) => j.identifier)).toEqual(['lethe_process_request']);
    } finally {
      await db.query(`update pii.settings set erasure_completed_jobs = false`);
    }
  });

  it('erases a subject named by two overlapping requests once; both requests end done', async () => {
    const first = await request(['33', '34']);
    const second = await request(['34', '35']);
    await processAll(first);
    await processAll(second);
    expect(await status(first)).toMatchObject({ status: 'done', erased: '2' });
    expect(await status(second)).toMatchObject({ status: 'done', erased: '2', residual_count: 0 });

    const { rows: items } = await db.query(
      `select i.request_id = $1 as of_first, i.erased_by = $1 as by_first, count(*)::int as n
       from pii_internal.request_items i where i.request_id in ($1, $2) group by 1, 2 order by 1, 2`,
      [first, second],
    );
    // second: 34 erased by first, 35 by second; first: both by first
    expect(items).toEqual([
      { of_first: false, by_first: false, n: 1 },
      { of_first: false, by_first: true, n: 1 },
      { of_first: true, by_first: true, n: 2 },
    ]);
    const { rows: chunks } = await db.query(
      `select request_id = $1 as of_first, sum((details ->> 'erased_now')::int)::int as erased_now, sum((details ->> 'items')::int)::int as items
       from pii.audit where action = 'erase_chunk' and request_id in ($1, $2) group by 1 order by 1`,
      [first, second],
    );
    expect(chunks).toEqual([
      { of_first: false, erased_now: 1, items: 2 },
      { of_first: true, erased_now: 2, items: 2 },
    ]);
    for (const [key, by] of [
      ['34', first],
      ['35', second],
    ] as const) {
      expect((await db.query('select request_id from pii.was_erased($1)', [key])).rows[0].request_id).toBe(by);
    }
    // Subject 34's orders were anonymized once: only the first request counted rows in app.orders for it.
    expect((await status(first)).rows_affected['app.orders']).toBe(4);
    expect((await status(second)).rows_affected['app.orders']).toBe(2);
  });

  // The second request was filed before the chunk committed: that erasure counts for it.
  it('erases a subject once when a request naming it is filed while a chunk erases it', async () => {
    const first = await request(['51', '52']);
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    let second: string;
    try {
      await a.query('begin');
      expect((await a.query('select pii.process_request_chunk($1) as n', [first])).rows[0].n).toBe(2);
      const filed = b.query(`select pii.request_erasure(array['52', '53']) as id`);
      await sleep(300); // b is filed (or, before filing locked FOR KEY SHARE, waited for a's chunk)
      await a.query('commit');
      second = (await filed).rows[0].id;
    } finally {
      a.release();
      b.release();
    }
    await processAll(first);
    await processAll(second);
    const { rows } = await db.query(
      `select sum((details ->> 'erased_now')::int)::int as n from pii.audit where action = 'erase_chunk' and request_id = $1`,
      [second],
    );
    expect(rows[0].n).toBe(1);
  });

  // Filing only flags subjects: it must not wait for another request's chunk erasing the
  // same subjects (the upsert's row lock did, for the whole chunk; a request filed beside a
  // large one went chunk by chunk behind it: minutes in the benchmark).
  it("files a request for subjects another request's chunk is erasing right now without waiting for that chunk", async () => {
    // The chunk stays in its erasure (tombstones locked, its audit row not yet written) for
    // 2 s, in this test's transaction only.
    await db.query(`
      create function app.slow_chunk() returns trigger language plpgsql as $$
      begin
        if current_setting('lethe_test.slow_chunk', true) = 'on' then perform pg_sleep(2); end if;
        return null;
      end $$;
      create trigger slow_chunk before delete on app.loyalty_points for each statement execute function app.slow_chunk();`);
    const first = await request(['56', '57']);
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    let second: string;
    try {
      await a.query('begin');
      await a.query(`set local lethe_test.slow_chunk = 'on'`);
      const chunk = a.query('select pii.process_request_chunk($1) as n', [first]);
      await sleep(500);
      await b.query('begin');
      await b.query(`set local lock_timeout = '500ms'`);
      second = (await b.query(`select pii.request_erasure(array['57', '58']) as id`)).rows[0].id;
      await b.query('commit');
      expect((await chunk).rows[0].n).toBe(2);
      await a.query('commit');
    } finally {
      await a.query('rollback').catch(() => undefined);
      await b.query('rollback').catch(() => undefined);
      a.release();
      b.release();
      await db.query('drop trigger slow_chunk on app.loyalty_points; drop function app.slow_chunk()');
    }
    await processAll(first);
    await processAll(second);
    expect(await status(first)).toMatchObject({ status: 'done', erased: '2', residual_count: 0 });
    expect(await status(second)).toMatchObject({ status: 'done', erased: '2', residual_count: 0 });
    // 57 was erased once, by the chunk in flight when the second request was filed.
    expect((await db.query('select request_id from pii.was_erased($1)', ['57'])).rows[0].request_id).toBe(first);
    const { rows } = await db.query(
      `select sum((details ->> 'erased_now')::int)::int as n from pii.audit where action = 'erase_chunk' and request_id = $1`,
      [second],
    );
    expect(rows[0].n).toBe(1);
    const { rows: flagged } = await db.query(
      `select count(*)::int as n from pii_internal.tombstones t
        where t.subject_hash in (select i.subject_hash from pii_internal.request_items i where i.request_id = $1)
          and t.bucket is not null and t.request_id is not null`,
      [second],
    );
    expect(flagged[0].n).toBe(2);
  });

  // Subjects with no tombstone in the statement's snapshot get a plain INSERT; a tombstone
  // committed after the snapshot by another transaction (a request filed beside this one)
  // must not fail the request with unique_violation: it is filed as if that tombstone had
  // been there (kept, not rewritten).
  it('files a request whose subject another transaction flags and commits while it is filed', async () => {
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    let first: string;
    let second: string;
    try {
      await a.query('begin');
      first = (await a.query(`select pii.request_erasure(array['74']) as id`)).rows[0].id;
      // b's snapshot does not see a's tombstone for 74: its insert waits for a, which then commits.
      const filed = b.query(`select pii.request_erasure(array['74', '75']) as id`);
      await sleep(300);
      await a.query('commit');
      second = (await filed).rows[0].id;
    } finally {
      await a.query('rollback').catch(() => undefined);
      a.release();
      b.release();
    }
    expect(await status(second)).toMatchObject({ status: 'queued', total: '2', matched: '2', duplicates: '0' });
    const { rows } = await db.query(
      `select t.request_id, t.bucket is not null as bucketed
       from unnest(array['74', '75']) with ordinality as u (k, n)
       join pii_internal.tombstones t on t.subject_hash = pii_internal.subject_hash('', u.k) order by u.n`,
    );
    // 74 stays flagged by the first request (not rewritten); 75 is the second's.
    expect(rows).toEqual([
      { request_id: first, bucketed: true },
      { request_id: second, bucketed: true },
    ]);
    expect(
      (await db.query('select count(*)::int as n from pii_internal.request_items where request_id = $1', [second]))
        .rows[0].n,
    ).toBe(2);
    await processAll(first);
    await processAll(second);
    expect(await status(first)).toMatchObject({ status: 'done', erased: '1', residual_count: 0 });
    expect(await status(second)).toMatchObject({ status: 'done', erased: '2', residual_count: 0 });
    expect((await db.query('select request_id from pii.was_erased($1)', ['75'])).rows[0].request_id).toBe(second);
  });

  it('mode delete removes the subject row and every registered row', async () => {
    const id = await request(['36'], { mode: 'delete' });
    await processAll(id);
    expect(await status(id)).toMatchObject({ status: 'done', mode: 'delete', residual_count: 0 });
    const { rows } = await db.query(
      `select (select count(*) from app.customers where id = 36)::int as customers,
              (select count(*) from app.orders where customer_id = 36)::int as orders,
              (select count(*) from app.order_items where order_id in (361, 362))::int as items,
              (select count(*) from app.events where customer_id = 36)::int as events,
              (select count(*) from app.loyalty_points where customer_id = 36)::int as loyalty`,
    );
    expect(rows[0]).toEqual({ customers: 0, orders: 0, items: 0, events: 0, loyalty: 0 });
  });
});

describe('failure and retry', () => {
  it('fail_request marks pending items failed with the error and the request failed; retry_request resumes it', async () => {
    const id = await request(['37', '38', '39']);
    expect(await db.query('select pii.process_request_chunk($1, 1) as n', [id]).then((r) => r.rows[0].n)).toBe(1);
    await db.query('select pii.fail_request($1, $2)', [id, 'deadlock detected']);

    expect(await status(id)).toMatchObject({ status: 'failed', failed: '2', erased: '1', error: 'deadlock detected' });
    const { rows } = await db.query(
      'select status, error, count(*)::int as n from pii.request_items($1) group by 1, 2 order by 1',
      [id],
    );
    expect(rows).toEqual([
      { status: 'done', error: null, n: 1 },
      { status: 'failed', error: 'deadlock detected', n: 2 },
    ]);
    // A failed request is not processed further, and is never silently done.
    expect((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n).toBe(0);
    expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('failed');
    const { rows: erasedNow } = await db.query(
      `select count(*)::int as n from app.customers where id in (37, 38, 39) and email is null`,
    );
    expect(erasedNow[0].n).toBe(1);

    // Retry: back to pending, a job queued again, processed to done.
    await db.query('select pii.retry_request($1)', [id]);
    expect(await status(id)).toMatchObject({ status: 'running', failed: '0', error: null });
    const { rows: pending } = await db.query(
      `select count(*)::int as n from pii.request_items($1) where status = 'pending' and error is null`,
      [id],
    );
    expect(pending[0].n).toBe(2);
    const { rows: job } = await db.query(
      `select count(*)::int as n from graphile_worker.jobs where key = 'lethe:request:' || $1`,
      [id],
    );
    expect(job[0].n).toBe(1);
    await processAll(id);
    expect(await status(id)).toMatchObject({ status: 'done', erased: '3', failed: '0', residual_count: 0 });
    const { rows: all } = await db.query(
      `select count(*)::int as n from app.customers where id in (37, 38, 39) and email is null`,
    );
    expect(all[0].n).toBe(3);
  });

  it('retry_request refuses a request that has not failed', async () => {
    const id = await request(['40']);
    await expectPgError(db.query('select pii.retry_request($1)', [id]), '55000', /is not failed/);
  });

  it('refuses unknown request ids with 42704', async () => {
    const unknown = randomUUID();
    for (const fn of [
      'pii.request_status($1)',
      'pii.process_request_chunk($1)',
      'pii.finish_request($1)',
      'pii.verify_erasure($1)',
    ]) {
      await expectPgError(
        db.query(`select * from ${fn}`, [unknown]),
        '42704',
        new RegExp(`erasure request ${unknown} does not exist`),
      );
    }
  });
});

describe('pii.request_erasure_from_import', () => {
  it('turns staged rows into one request: CSV rows kept, duplicates counted, staged rows deleted', async () => {
    const importId = randomUUID();
    const other = randomUUID();
    // Row numbers as a CSV importer gives them (header is row 1).
    await db.query(
      `insert into pii.import_rows (import_id, row_number, subject_key)
       select $1, n + 1, k from unnest(array['41', '42', '9041', '41', ' 42', '43']) with ordinality as u (k, n)`,
      [importId],
    );
    await db.query(`insert into pii.import_rows (import_id, row_number, subject_key) values ($1, 2, '44')`, [other]);
    const { rows } = await db.query(
      `select pii.request_erasure_from_import($1, request_key => 'dpo-2026-11.csv') as id`,
      [importId],
    );
    const id = rows[0].id;
    expect(await status(id)).toMatchObject({
      source: 'csv',
      total: '4',
      duplicates: '2',
      matched: '3',
      unmatched: '1',
    });

    const { rows: items } = await db.query('select source_row, matched, status from pii.request_items($1)', [id]);
    expect(items).toEqual([
      { source_row: '2', matched: true, status: 'pending' },
      { source_row: '3', matched: true, status: 'pending' },
      { source_row: '4', matched: false, status: 'pending' },
      { source_row: '7', matched: true, status: 'pending' },
    ]);
    const { rows: staged } = await db.query('select import_id, count(*)::int as n from pii.import_rows group by 1');
    expect(staged).toEqual([{ import_id: other, n: 1 }]);

    await processAll(id);
    // Erased counts subjects erased (3), not the unmatched row 4.
    expect(await status(id)).toMatchObject({ status: 'done', erased: '3', residual_count: 0 });
    await expectPgError(
      db.query('select pii.request_erasure_from_import($1)', [importId]),
      '22023',
      /has no staged rows/,
    );
  });

  it('names the CSV row of a bad key', async () => {
    const importId = randomUUID();
    await db.query(
      `insert into pii.import_rows (import_id, row_number, subject_key) values ($1, 2, '54'), ($1, 3, 'abc'), ($1, 4, '55')`,
      [importId],
    );
    await expectPgError(db.query('select pii.request_erasure_from_import($1)', [importId]), '22P02', /\b3\b/);
  });

  it('rows staged out of order: each item keeps its lowest CSV row, and the lowest bad row is named', async () => {
    // The staged rows are read without sorting them (a million-row sort per import).
    const importId = randomUUID();
    await db.query(
      `insert into pii.import_rows (import_id, row_number, subject_key)
       values ($1, 9, '61'), ($1, 8, '62'), ($1, 3, '61'), ($1, 5, ' 62'), ($1, 7, '63')`,
      [importId],
    );
    const { rows } = await db.query('select pii.request_erasure_from_import($1) as id', [importId]);
    expect(await status(rows[0].id)).toMatchObject({ total: '3', duplicates: '2' });
    const { rows: items } = await db.query('select source_row from pii.request_items($1) order by source_row::bigint', [
      rows[0].id,
    ]);
    expect(items.map((i) => i.source_row)).toEqual(['3', '5', '7']);

    const bad = randomUUID();
    await db.query(
      `insert into pii.import_rows (import_id, row_number, subject_key)
       values ($1, 12, 'x12'), ($1, 2, '64'), ($1, 11, 'x11'), ($1, 6, 'x6'), ($1, 4, '65')`,
      [bad],
    );
    await expectPgError(db.query('select pii.request_erasure_from_import($1)', [bad]), '22P02', /row 6: /);
  });

  it('accepts rows streamed with COPY into pii.import_rows', async () => {
    const { from: copyFrom } = await import('pg-copy-streams');
    const { pipeline } = await import('node:stream/promises');
    const { Readable } = await import('node:stream');
    const importId = randomUUID();
    const client = await db.pool.connect();
    try {
      const lines = ['45', '46', '45'].map((k, i) => `${importId}\t${i + 2}\t${k}\n`);
      await pipeline(
        Readable.from(lines),
        client.query(copyFrom('copy pii.import_rows (import_id, row_number, subject_key) from stdin')),
      );
    } finally {
      client.release();
    }
    const { rows } = await db.query('select pii.request_erasure_from_import($1) as id', [importId]);
    expect(await status(rows[0].id)).toMatchObject({ total: '2', duplicates: '1', matched: '2' });
    expect(
      (await db.query('select count(*)::int as n from pii.import_rows where import_id = $1', [importId])).rows[0].n,
    ).toBe(0);
  });
});

describe('bad input is refused with a clear error and nothing written', () => {
  const cases: [string, string, unknown[], string, RegExp][] = [
    [
      'an unknown mode',
      `select pii.request_erasure(array['47'], mode => 'shred')`,
      [],
      '22023',
      /mode must be erase or delete, not "shred"/,
    ],
    ['an empty key list', `select pii.request_erasure(array[]::text[])`, [], '22023', /at least one subject key/],
    ['a NULL key list', `select pii.request_erasure(null::text[])`, [], '22004', /must not be NULL/],
    [
      'a NULL key (named by position)',
      `select pii.request_erasure(array['47', '48', null])`,
      [],
      '22004',
      /subject key #3 is NULL/,
    ],
    // PostgreSQL 16+ names the position (pg_input_is_valid); older servers name the type only.
    [
      'a key of the wrong type (named by position, never by value)',
      `select pii.request_erasure(array['47', 'abc', '48'])`,
      [],
      '22P02',
      /^subject key #2 is not a valid bigint$|^subject keys must be valid bigint$/,
    ],
    [
      'an out-of-range key',
      `select pii.request_erasure(array['99999999999999999999'])`,
      [],
      '22P02',
      /^subject key #1 is not a valid bigint$|^subject keys must be valid bigint$/,
    ],
    [
      'an empty source',
      `select pii.request_erasure(array['47'], source => ' ')`,
      [],
      '22023',
      /source must not be empty/,
    ],
    [
      'scopes on an unscoped install',
      `select pii.request_erasure(array['47'], scopes => array['1'])`,
      [],
      '22023',
      /not scoped/,
    ],
  ];
  for (const [what, sql, params, code, message] of cases) {
    it(`refuses ${what} (${code})`, async () => {
      const before = await footprint();
      await expectPgError(db.query(sql, params), code, message);
      expect(await footprint()).toEqual(before);
      expect((await db.query(`select erased, flagged_at from pii.was_erased('47')`)).rows[0]).toEqual({
        erased: false,
        flagged_at: null,
      });
    });
  }

  it('refuses a chunk size out of range (22023) and leaves the request pending', async () => {
    const id = await request(['50']);
    for (const size of [0, 100001]) {
      await expectPgError(
        db.query('select pii.process_request_chunk($1, $2)', [id, size]),
        '22023',
        new RegExp(`chunk_size must be between 1 and 100000, not ${size}`),
      );
    }
    expect(await status(id)).toMatchObject({ status: 'queued', erased: '0' });
  });

  it('refuses a batch above pii.settings.max_keys_per_request (54000)', async () => {
    await db.query('update pii.settings set max_keys_per_request = 3');
    try {
      const before = await footprint();
      await expectPgError(
        db.query(`select pii.request_erasure(array['47', '48', '49', '50'])`),
        '54000',
        /4 subject keys in one call; the limit is 3/,
      );
      expect(await footprint()).toEqual(before);
      // At the limit it is accepted.
      await request(['47', '48', '49']);
    } finally {
      await db.query('update pii.settings set max_keys_per_request = default');
    }
  });

  it('names the position of a bad key on PostgreSQL 16+', async () => {
    const { rows } = await db.query(`select current_setting('server_version_num')::int >= 160000 as v16`);
    if (!rows[0].v16) return;
    await expectPgError(
      db.query(`select pii.request_erasure(array['1', '2', '3', 'x4'])`),
      '22P02',
      /^subject key #4 is not a valid bigint$/,
    );
  });

  it('never echoes a key in an error message', async () => {
    const err = await db.query(`select pii.request_erasure(array['1', 'jane.doe@example.com'])`).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).not.toContain('jane');
    expect(JSON.stringify(err)).not.toContain('jane');
  });
});

describe('no raw key kept (text-keyed subjects)', () => {
  let kdb: TestDatabase;
  const handles = [1, 2, 3].map((i) => `mbr-${md5(`member${i}`)}`);

  beforeAll(async () => {
    kdb = await createTestDatabase('request_text_keys');
    await loadFixture(kdb, 'requests_text_keys.sql');
  });
  afterAll(() => kdb?.drop());

  /** Which tables of schema pii (and graphile-worker's jobs) hold the string anywhere in a row. */
  async function tablesHolding(needle: string): Promise<string[]> {
    const { rows: tables } = await kdb.query(
      `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'p') and (n.nspname in ('pii', 'pii_internal') or (n.nspname = 'graphile_worker' and c.relname = '_private_jobs'))
       order by 1`,
    );
    expect(tables.length).toBeGreaterThan(8);
    const found: string[] = [];
    for (const { t } of tables) {
      const { rows } = await kdb.query(`select exists (select from ${t} x where strpos(x::text, $1) > 0) as hit`, [
        needle,
      ]);
      if (rows[0].hit) found.push(t);
    }
    return found;
  }

  it('keeps raw keys only while items are pending; afterwards requests, items, tombstones and audit hold hashes only', async () => {
    const { rows } = await kdb.query(`select pii.request_erasure($1::text[], request_key => 'req-' || $2) as id`, [
      [...handles, handles[0], 'mbr-unknown-subject-000000000000'],
      handles[0],
    ]);
    const id = rows[0].id;
    // Pending: the key is there (the search works), in the items only.
    expect(await tablesHolding(handles[1]!)).toEqual(['pii_internal.request_items']);

    for (;;) {
      const { rows: r } = await kdb.query('select pii.process_request_chunk($1, 2) as n', [id]);
      if (r[0].n === 0) break;
    }
    expect((await kdb.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');
    for (const key of [...handles, 'mbr-unknown-subject-000000000000', 'member1@example.org']) {
      expect(await tablesHolding(key), key).toEqual([]);
    }
    const { rows: items } = await kdb.query(
      'select count(*)::int as n, count(*) filter (where subject_key is null and scope is null)::int as keyless from pii_internal.request_items',
    );
    expect(items[0]).toEqual({ n: 4, keyless: 4 });
    // The subject record is kept (anonymized), its logins deleted.
    const { rows: m } = await kdb.query(
      `select count(*) filter (where email is null and display_name is null)::int as erased,
              (select count(*) from acct.logins where handle = any ($1))::int as logins
       from acct.members where handle = any ($1)`,
      [handles],
    );
    expect(m[0]).toEqual({ erased: 3, logins: 0 });
    // was_erased answers from the key, and from the hash shown in the items.
    const { rows: w } = await kdb.query('select erased, request_id from pii.was_erased($1)', [handles[2]]);
    expect(w[0]).toEqual({ erased: true, request_id: id });
    const { rows: h } = await kdb.query(
      `select (select count(*) from pii.request_items($1) i, pii.was_erased_hash(i.subject_hash) w where w.erased)::int as n`,
      [id],
    );
    expect(h[0].n).toBe(4);
  });
});

/** The fixture's handles are 'mbr-' || md5('member' || i). */
function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}
