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
});
