// Requests are verified chunk by chunk, in each chunk's transaction (issue 13): the
// erase_chunk audit entry records the traces left; finish_request verifies the whole
// request again only when a chunk found some.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('chunk_verification');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  // An unregistered column quoting customer 7's email: a recorded identifier residual.
  await db.query(`alter table app.customers add column alt_contact text`);
  await db.query(`update app.customers set alt_contact = 'reach me at ' || email where id = 7`);
});
afterAll(() => db?.drop());

/** Request, chunks of size 2, finish: in one transaction where pii.verify_erasure calls are counted. */
async function erase(keys: string[]) {
  const c: pg.PoolClient = await db.pool.connect();
  try {
    await c.query('begin');
    await c.query(`set local track_functions = 'all'`);
    const id = (await c.query('select pii.request_erasure($1::text[]) as id', [keys])).rows[0].id as string;
    while ((await c.query('select pii.process_request_chunk($1, 2) as n', [id])).rows[0].n > 0);
    const status = (await c.query('select pii.finish_request($1) as s', [id])).rows[0].s as string;
    const { rows } = await c.query(
      `select (select coalesce(pg_stat_get_xact_function_calls('pii.verify_erasure(uuid)'::regprocedure), 0)::int) as full_verifications,
              (select array_agg((details ->> 'residuals')::int order by at, id) from pii.audit
                where request_id = $1 and action = 'erase_chunk') as chunk_residuals,
              (select residual_count from pii.requests where id = $1) as residual_count`,
      [id],
    );
    await c.query('commit');
    return { id, status, ...rows[0] };
  } finally {
    c.release();
  }
}

describe('verification per chunk', () => {
  it('clean chunks: done without verifying the whole request again', async () => {
    expect(await erase(['3', '4', '5'])).toMatchObject({
      status: 'done',
      full_verifications: 0,
      chunk_residuals: [0, 0],
      residual_count: 0,
    });
  });

  it('a chunk that leaves a trace records it; finish_request verifies the request and fails it', async () => {
    const r = await erase(['6', '7', '8']);
    expect(r).toMatchObject({ status: 'failed', full_verifications: 1, residual_count: 1 });
    // Subjects are claimed in hash order: 7 is in one of the two chunks.
    expect((r.chunk_residuals as number[]).sort()).toEqual([0, 1]);
    expect((await db.query('select column_name from pii.verify_erasure($1)', [r.id])).rows).toEqual([
      { column_name: 'alt_contact' },
    ]);
  });

  // A chunk does not look for its subjects' rows in a table whose rows erasure deletes when
  // it can prove the DELETE left none (pii_internal.proven_deleted): both ways a row can stay
  // must still be caught.
  const rowsNotDeleted = async (id: string) =>
    (await db.query('select table_name, detail from pii.verify_erasure($1)', [id])).rows;

  it("an owner's BEFORE DELETE row trigger on one partition keeps a row: the chunk reports it", async () => {
    await db.query(`
      create function app.keep_event() returns trigger language plpgsql as $$
        begin if old.customer_id = 9 then return null; end if; return old; end $$;
      create trigger keep_event before delete on app.events_2026_10 for each row execute function app.keep_event()`);
    try {
      const r = await erase(['9']);
      expect(r).toMatchObject({ status: 'failed', chunk_residuals: [1], residual_count: 1 });
      expect(await rowsNotDeleted(r.id)).toEqual([{ table_name: 'app.events', detail: 'row not deleted' }]);
    } finally {
      await db.query('drop trigger keep_event on app.events_2026_10; drop function app.keep_event()');
    }
  });

  it("an owner's AFTER DELETE trigger writes the row back (guard off): the chunk reports it", async () => {
    await db.query(`
      select pii.set_guard('app.loyalty_points', 'off');
      create function app.restore_points() returns trigger language plpgsql as $$
        begin insert into app.loyalty_points values (old.id + 100000, old.customer_id, old.points, old.reason); return null; end $$;
      create trigger restore_points after delete on app.loyalty_points for each row execute function app.restore_points()`);
    try {
      const r = await erase(['1']);
      expect(r).toMatchObject({ status: 'failed', chunk_residuals: [1], residual_count: 1 });
      expect(await rowsNotDeleted(r.id)).toEqual([{ table_name: 'app.loyalty_points', detail: 'row not deleted' }]);
    } finally {
      await db.query(`drop trigger restore_points on app.loyalty_points; drop function app.restore_points();
                      select pii.set_guard('app.loyalty_points', 'scrub')`);
    }
  });

  it('a clean chunk proves its DELETE statements instead of looking for the rows', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      const state = (await c.query(`select pii_internal.delete_proof_state('erase', null) as s`)).rows[0].s;
      await c.query(`select * from pii.erase_subjects(array['2'])`);
      const proven = (await c.query('select pii_internal.proven_deleted($1)::text[] as p', [state])).rows[0].p;
      expect([...proven].sort()).toEqual(['app.events', 'app.loyalty_points']);
      // Any row written to the table afterwards voids the proof.
      await c.query(`insert into app.loyalty_points values (999001, 2, 1, 'again')`);
      expect((await c.query('select pii_internal.proven_deleted($1)::text[] as p', [state])).rows[0].p).toEqual([
        'app.events',
      ]);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });
});
