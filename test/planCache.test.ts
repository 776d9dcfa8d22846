// The plan cache (db/code/48_plan_cache.sql): erasure plans nothing once the registry is
// committed, and every registry change and DDL on a registered table gives a new plan.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('plan_cache');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
});
afterAll(() => db.drop());

const BUILDERS = [
  'pii_internal.build_erase_plan(text)',
  'pii_internal.build_row_erased_sql(regclass, text)',
  'pii_internal.build_subject_rows_sql(regclass)',
  'pii_internal.build_subject_key_sql(regclass)',
];

/** Runs fn in a transaction that is rolled back; returns how often each plan builder ran in it. */
async function builderCalls(fn: (c: pg.PoolClient) => Promise<void>): Promise<Record<string, number>> {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    await c.query(`set local track_functions = 'all'`);
    await fn(c);
    const { rows } = await c.query<{ f: string; n: string }>(
      `select f, coalesce(pg_stat_get_xact_function_calls(f::regprocedure), 0) as n from unnest($1::text[]) f`,
      [BUILDERS],
    );
    return Object.fromEntries(rows.map((r) => [r.f, Number(r.n)]));
  } finally {
    await c.query('rollback');
    c.release();
  }
}

const NONE = Object.fromEntries(BUILDERS.map((f) => [f, 0]));

describe('plan cache', () => {
  it('is built when the registration commits: an erasure (even one rolled back) plans nothing', async () => {
    expect(await builderCalls((c) => c.query(`select * from pii.erase_subjects(array['3'])`).then(() => {}))).toEqual(
      NONE,
    );
    // The request path and verification too.
    expect(
      await builderCalls(async (c) => {
        const { rows } = await c.query(`select pii.request_erasure(array['5', '6']) as id`);
        while ((await c.query(`select pii.process_request_chunk($1) as n`, [rows[0].id])).rows[0].n > 0);
        expect((await c.query(`select pii.finish_request($1) as s`, [rows[0].id])).rows[0].s).toBe('done');
      }),
    ).toEqual(NONE);
  });

  it('a renamed registered column: the next erasure erases it under its new name', async () => {
    await db.query('alter table app.customers rename column notes to remarks');
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query(`select * from pii.erase_subjects(array['4'])`);
      const { rows } = await c.query(`select remarks from app.customers where id = 4`);
      expect(rows).toEqual([{ remarks: null }]);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });

  it('a column registered later is erased by the next erasure; a registration rolled back changes nothing', async () => {
    await db.query(`alter table app.customers add column nickname text`);
    await db.query(`update app.customers set nickname = 'nick' || id`);
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query(`select pii.register_column('app.customers', 'nickname', 'null', 'hide', 'name')`);
      await c.query('rollback');
      await c.query('begin');
      await c.query(`select * from pii.erase_subjects(array['8'])`);
      expect((await c.query(`select nickname from app.customers where id = 8`)).rows).toEqual([{ nickname: 'nick8' }]);
      await c.query('rollback');
      await c.query(`select pii.register_column('app.customers', 'nickname', 'null', 'hide', 'name')`);
      await c.query('begin');
      await c.query(`select * from pii.erase_subjects(array['8'])`);
      expect((await c.query(`select nickname from app.customers where id = 8`)).rows).toEqual([{ nickname: null }]);
      await c.query('rollback');
    } finally {
      c.release();
    }
  });

  it('is not used while its event triggers are disabled (DDL would go unseen), and is emptied then', async () => {
    await db.query('alter event trigger lethe_plan_cache_ddl disable');
    try {
      const calls = await builderCalls((c) => c.query(`select * from pii.erase_subjects(array['9'])`).then(() => {}));
      expect(calls['pii_internal.build_erase_plan(text)']).toBe(1);
      await db.query(`select * from pii.erase_subjects(array['10'])`);
      expect((await db.query(`select count(*)::int as n from pii_internal.plan_cache`)).rows).toEqual([{ n: 0 }]);
    } finally {
      await db.query('alter event trigger lethe_plan_cache_ddl enable');
    }
  });

  it("is Lethe's owner's alone: the group roles cannot read or write it", async () => {
    for (const role of ['pii_admin', 'pii_operator', 'pii_auditor']) {
      const c = await db.pool.connect();
      try {
        await c.query('begin');
        await c.query(`set local role ${role}`);
        await expectPgError(c.query(`select * from pii_internal.plan_cache`), '42501', /permission denied/);
      } finally {
        await c.query('rollback');
        c.release();
      }
    }
  });
});
