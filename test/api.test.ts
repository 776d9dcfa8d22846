// createLethe and runWorker against a real PostgreSQL: a request made through the API is
// processed by the graphile-worker task to `done`, verified, audited; errors from the
// database arrive as LetheError with the SQLSTATE.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLethe,
  type DB,
  type Lethe,
  LetheError,
  requestErasure,
  runWorker,
  type LetheWorker,
} from '../src/api/index.js';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let lethe: Lethe;
let worker: LetheWorker | undefined;

beforeAll(async () => {
  db = await createTestDatabase('api');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  lethe = createLethe({ connectionString: db.url });
});
afterAll(async () => {
  await worker?.stop();
  await lethe?.close();
  await db?.drop();
});

async function startWorker(): Promise<LetheWorker> {
  worker ??= await runWorker({
    connectionString: db.url,
    concurrency: 2,
    chunkSize: 40,
    pollInterval: 200,
    log: () => {},
  });
  return worker;
}

describe('requestErasure → worker → done', () => {
  it('processes a request end to end and verifies it', async () => {
    const id = await lethe.requestErasure(['1', '2', '2', '999999'], { requestKey: 'api-1', source: 'api-test' });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    // Idempotent on the request key.
    expect(await lethe.requestErasure(['1'], { requestKey: 'api-1' })).toBe(id);

    const queued = await lethe.getRequest(id);
    expect(queued).toMatchObject({
      id,
      status: 'queued',
      source: 'api-test',
      total: 3,
      matched: 2,
      unmatched: 1,
      duplicates: 1,
    });

    await startWorker();
    const progress: number[] = [];
    const done = await lethe.waitForRequest(id, { timeoutMs: 30_000, onProgress: (s) => progress.push(s.progress) });
    expect(done).toMatchObject({ status: 'done', erased: 2, failed: 0, residualCount: 0 }); // 999999 matched no subject
    expect(done.verifiedAt).toBeInstanceOf(Date);
    expect(done.rowsAffected['app.customers']).toBe(2);
    expect(progress.at(-1)).toBe(1);

    const { rows } = await db.query('select email, status from app.customers where id in (1, 2) order by id');
    expect(rows).toEqual([
      { email: null, status: 'DEACTIVATED' },
      { email: null, status: 'DEACTIVATED' },
    ]);
    expect(await lethe.verifyRequest(id)).toEqual({ verified: true, residuals: [] });

    const items = await lethe.getRequestItems(id);
    expect(items).toHaveLength(3);
    expect(items.every((i) => /^[0-9a-f]{64}$/.test(i.subjectHash) && i.status === 'done')).toBe(true);
    expect(await lethe.getRequestItems(id, { matched: false })).toHaveLength(1);

    expect(await lethe.wasErased('1')).toMatchObject({ erased: true, requestId: id });
    expect(await lethe.wasErased('3')).toEqual({ erased: false, flaggedAt: null, erasedAt: null, requestId: null });
    expect((await lethe.wasErasedHash(items[0]!.subjectHash)).erased).toBe(true);

    const audit = await lethe.audit.rows({ requestId: id });
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining(['request_erasure', 'erase_chunk', 'request_finished']),
    );
    // No key and no PII in the audit trail.
    expect(JSON.stringify(audit)).not.toMatch(/user1@example|First1/);
  });

  it('runs a request made inside the application transaction only after commit, and none after rollback', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query(`select pii.request_erasure(array['5']) as id`);
      await client.query('rollback');
      await expect(lethe.getRequest(rows[0].id)).rejects.toMatchObject({ code: '42704' });
    } finally {
      client.release();
    }
    // The same through Kysely: requestErasure accepts a transaction.
    const id = await lethe.db.transaction().execute((trx) => requestErasure(trx, ['6']));
    expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
  });

  it("works with the application's own Kysely (ESM build) and its transactions", async () => {
    const appDb = new Kysely<DB>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }),
    });
    try {
      const id = await appDb.transaction().execute(async (trx) => {
        const rid = await requestErasure(trx, ['9'], { requestKey: 'app-trx' });
        // Visible inside the transaction, typed by the generated schema.
        const row = await trx
          .selectFrom('pii.requests')
          .select(['status', 'total'])
          .where('id', '=', rid)
          .executeTakeFirstOrThrow();
        expect(row).toEqual({ status: 'queued', total: '1' });
        return rid;
      });
      expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
    } finally {
      await appDb.destroy();
    }
  });

  it('processes big requests in several chunks', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => String(i + 20));
    const id = await lethe.requestErasure(keys, { mode: 'delete' });
    const done = await lethe.waitForRequest(id, { timeoutMs: 60_000 });
    expect(done).toMatchObject({ status: 'done', total: 100, matched: 100, erased: 100 });
    const { rows } = await db.query('select count(*)::int as n from app.customers where id between 20 and 119');
    expect(rows[0].n).toBe(0);
    // chunkSize 40: three chunks, each its own transaction and audit row (in any order: chunks
    // of one request may run side by side).
    const chunks = (await lethe.audit.rows({ requestId: id, action: 'erase_chunk' })).map((a) =>
      Number(a.details.items),
    );
    expect(chunks.sort((a, b) => a - b)).toEqual([20, 40, 40]);
  });
});

describe('errors', () => {
  it('surfaces SQL errors as LetheError with the SQLSTATE', async () => {
    const err = await lethe.requestErasure([], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LetheError);
    expect(err).toMatchObject({ code: '22023', message: expect.stringMatching(/at least one subject key/) });
    expect((err as LetheError).isBadInput).toBe(true);

    await expect(lethe.requestErasure(['abc'])).rejects.toMatchObject({
      code: '22P02',
      message: expect.stringMatching(/#1/),
    });
    await expect(lethe.requestErasure(['1'], { mode: 'shred' as 'erase' })).rejects.toMatchObject({ code: '22023' });
    await expect(lethe.getRequest('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: '42704' });
    await expect(lethe.getRequest('not-a-uuid')).rejects.toMatchObject({ code: '22P02' });
  });

  it('reports permission errors as 42501 for roles without pii_operator', async () => {
    await db.query(`drop role if exists lethe_api_nobody; create role lethe_api_nobody login password 'pw'`);
    const u = new URL(db.url);
    u.username = 'lethe_api_nobody';
    u.password = 'pw';
    const nobody = createLethe({ connectionString: u.toString() });
    try {
      await expect(nobody.requestErasure(['7'])).rejects.toMatchObject({ name: 'LetheError', code: '42501' });
    } finally {
      await nobody.close();
      await db.query('drop role lethe_api_nobody');
    }
  });

  it('reports an unreachable server as 08001', async () => {
    const down = createLethe({ connectionString: 'postgres://x:y@127.0.0.1:1/none' });
    try {
      await expect(down.getRequest('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: '08001' });
    } finally {
      await down.close();
    }
  });

  it('times out waiting with a hint when no worker runs', async () => {
    await worker?.stop();
    worker = undefined;
    const id = await lethe.requestErasure(['8']);
    await expect(lethe.waitForRequest(id, { timeoutMs: 300 })).rejects.toMatchObject({
      code: '57014',
      message: expect.stringMatching(/still queued.*worker/),
    });
    await startWorker();
    expect((await lethe.waitForRequest(id, { timeoutMs: 30_000 })).status).toBe('done');
  });
});

describe('registry and audit helpers', () => {
  it('lists registered tables and columns through the typed views', async () => {
    const tables = await lethe.registry.tables();
    expect(tables.map((t) => t.table_name)).toContain('app.customers');
    const cols = await lethe.registry.columns('app.customers');
    expect(cols.find((c) => c.column_name === 'email')).toMatchObject({ erase: 'null', mask: 'email' });
    const problems = await lethe.registry.lint();
    expect(problems.some((p) => p.table_name === 'app.loyalty_points' && p.severity === 'warning')).toBe(true);
  });

  it('registers through the API with the SQL validation', async () => {
    await db.query('create table app.notes (id bigint primary key, customer_id bigint, body text)');
    await lethe.registry.registerTable('app.notes', 'customer_id', 'anonymize', { unenforcedJoin: true });
    await lethe.registry.registerColumn('app.notes', 'body', { erase: 'null', category: 'free_text' });
    await expect(lethe.registry.registerColumn('app.notes', 'body', { erase: 'scramble' })).rejects.toMatchObject({
      code: '22023',
    });
    await expect(lethe.registry.registerColumn('app.notes', 'nope', { erase: 'null' })).rejects.toMatchObject({
      code: '42703',
    });
    const audit = await lethe.audit.rows({ action: 'register_column', limit: 1 });
    expect(audit[0]?.details).toMatchObject({ table: 'app.notes', column: 'body' });
  });

  it('accepts an existing pool and leaves it open on close()', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const l = createLethe({ pool });
    expect(await l.overdueRequests()).toEqual([]);
    await l.close();
    expect((await pool.query('select 1 as one')).rows[0].one).toBe(1);
    await pool.end();
  });
});
