// A request chunk proves its UPDATE statements (anonymise) instead of reading its subjects'
// rows again (pii_internal.proven_updated, issue 13), when nothing can change or hide a row.
// Each attack below is a hostile table owner's way to leave a trace behind an UPDATE that
// looks clean: the chunk must still report it (it falls back to the full check).
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let owner: string;

beforeAll(async () => {
  db = await createTestDatabase('chunk_verification_updates');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  // A partitioned table erasure anonymises, owned by a role that is not a superuser (row
  // level security binds it once forced).
  owner = `${db.name}_hostile`;
  await db.query(`
    create role ${owner} nosuperuser; grant ${owner} to current_user; grant usage on schema app to ${owner};
    create table app.reviews (id bigint, customer_id bigint not null, region text not null, body text,
                              primary key (id, region)) partition by list (region);
    create table app.reviews_eu partition of app.reviews for values in ('eu');
    create table app.reviews_us partition of app.reviews for values in ('us');
    create index reviews_customer_id_idx on app.reviews (customer_id);
    insert into app.reviews select i, i, case when i % 2 = 0 then 'eu' else 'us' end, 'review by user' || i from generate_series(1, 10) i;
    alter table app.reviews owner to ${owner}; alter table app.reviews_eu owner to ${owner}; alter table app.reviews_us owner to ${owner};
    select pii.register_table('app.reviews', 'customer_id', 'anonymize', unenforced_join => true);
    select pii.register_column('app.reviews', 'body', 'null', 'hide', 'free_text');`);
});
afterAll(async () => {
  await db?.drop();
});

/** Request, one chunk per subject, finish: the chunks' residual counts and the request's outcome. */
async function erase(keys: string[]) {
  const c: pg.PoolClient = await db.pool.connect();
  try {
    await c.query('begin');
    const id = (await c.query('select pii.request_erasure($1::text[]) as id', [keys])).rows[0].id as string;
    while ((await c.query('select pii.process_request_chunk($1, 1) as n', [id])).rows[0].n > 0);
    const status = (await c.query('select pii.finish_request($1) as s', [id])).rows[0].s as string;
    const { rows } = await c.query(
      `select (select array_agg((details ->> 'residuals')::int order by at, id) from pii.audit
                where request_id = $1 and action = 'erase_chunk') as chunk_residuals,
              (select residual_count from pii.requests where id = $1) as residual_count`,
      [id],
    );
    await c.query('commit');
    const residuals = (await db.query('select table_name, column_name from pii.verify_erasure($1)', [id])).rows;
    return { id, status, ...rows[0], residuals };
  } finally {
    c.release();
  }
}

/** The tables whose UPDATE pii_internal.proven_updated proves after pii.erase_subjects, then after `after`. */
async function provenAround(key: string, after: string) {
  const c = await db.pool.connect();
  const proven = async (state: unknown, steps: { table_name: string; rows_affected: string }[]) =>
    [
      ...(
        await c.query('select pii_internal.proven_updated($1, $2::text[], $3::bigint[])::text[] as p', [
          state,
          steps.map((s) => s.table_name),
          steps.map((s) => s.rows_affected),
        ])
      ).rows[0].p,
    ].sort();
  try {
    await c.query('begin');
    const state = (await c.query(`select pii_internal.update_proof_state('erase', null) as s`)).rows[0].s;
    const steps = (await c.query('select table_name, rows_affected from pii.erase_subjects($1::text[])', [[key]])).rows;
    const before = await proven(state, steps);
    await c.query(after);
    return { before, after: await proven(state, steps) };
  } finally {
    await c.query('rollback');
    c.release();
  }
}

const updated = ['app.customers', 'app.engravings', 'app.order_items', 'app.orders', 'app.reviews'];

describe('verification per chunk: proven UPDATE statements', () => {
  it('a clean chunk proves every UPDATE; a later write to a table or its parent voids its proof', async () => {
    expect(await provenAround('2', `update app.orders set total = total where id = 21`)).toEqual({
      before: updated,
      // orders' children reach their subject through it: their proofs go too.
      after: ['app.customers', 'app.reviews'],
    });
    expect((await provenAround('2', `insert into app.reviews values (99, 2, 'us', 'again')`)).after).toEqual([
      'app.customers',
      'app.engravings',
      'app.order_items',
      'app.orders',
    ]);
    expect(await erase(['3'])).toMatchObject({ status: 'done', chunk_residuals: [0], residual_count: 0 });
  });

  it("an owner's BEFORE UPDATE row trigger on one partition restores the old value: the chunk reports it", async () => {
    await db.query(`
      create function app.keep_review() returns trigger language plpgsql as $$
        begin new.body := old.body; return new; end $$;
      create trigger keep_review before update on app.reviews_eu for each row execute function app.keep_review()`);
    try {
      expect(await erase(['4'])).toMatchObject({
        status: 'failed',
        chunk_residuals: [1],
        residuals: [{ table_name: 'app.reviews', column_name: 'body' }],
      });
    } finally {
      await db.query('drop trigger keep_review on app.reviews_eu; drop function app.keep_review()');
    }
  });

  it("an owner's AFTER UPDATE trigger writes the old value back (guard off): the chunk reports it", async () => {
    await db.query(`
      select pii.set_guard('app.orders', 'off');
      create function app.restore_order() returns trigger language plpgsql as $$
        begin
          if pg_trigger_depth() = 1 then update app.orders set shipping_name = old.shipping_name where id = old.id; end if;
          return null;
        end $$;
      create trigger restore_order after update on app.orders for each row execute function app.restore_order()`);
    try {
      expect(await erase(['5'])).toMatchObject({
        status: 'failed',
        chunk_residuals: [1],
        residuals: [{ table_name: 'app.orders', column_name: 'shipping_name' }],
      });
    } finally {
      await db.query(`drop trigger restore_order on app.orders; drop function app.restore_order();
                      select pii.set_guard('app.orders', 'scrub')`);
    }
  });

  it('a later step of the same chunk updates an erased table again (a trigger on the subject table): the chunk reports it', async () => {
    await db.query(`
      select pii.set_guard('app.order_items', 'off');
      create function app.regift() returns trigger language plpgsql as $$
        begin
          update app.order_items set gift_message = 'for ' || old.first_name
          where order_id in (select o.id from app.orders o where o.customer_id = old.id);
          return null;
        end $$;
      create trigger regift after update on app.customers for each row execute function app.regift()`);
    try {
      const r = await erase(['7']);
      expect(r).toMatchObject({ status: 'failed', chunk_residuals: [1] });
      expect(new Set(r.residuals.map((x: { table_name: string }) => x.table_name))).toEqual(
        new Set(['app.order_items']),
      );
    } finally {
      await db.query(`drop trigger regift on app.customers; drop function app.regift();
                      select pii.set_guard('app.order_items', 'scrub')`);
    }
  });

  it('a later step of the same chunk inserts a row into an erased table: the chunk reports it', async () => {
    await db.query(`
      select pii.set_guard('app.reviews', 'off');
      create function app.review_again() returns trigger language plpgsql as $$
        begin insert into app.reviews values (1000 + old.id, old.id, 'us', 'still ' || old.email); return null; end $$;
      create trigger review_again after update on app.customers for each row execute function app.review_again()`);
    try {
      expect(await erase(['8'])).toMatchObject({
        status: 'failed',
        chunk_residuals: [1],
        residuals: [{ table_name: 'app.reviews', column_name: 'body' }],
      });
    } finally {
      await db.query(`drop trigger review_again on app.customers; drop function app.review_again();
                      select pii.set_guard('app.reviews', 'scrub')`);
    }
  });

  it("an owner's row level security hides the subject's rows from the UPDATE (not from reads): the chunk reports it", async () => {
    await db.query(`
      alter table app.reviews enable row level security; alter table app.reviews force row level security;
      create policy reviews_read on app.reviews for select using (true);
      create policy reviews_write on app.reviews for update using (customer_id <> 6)`);
    try {
      expect(await erase(['6'])).toMatchObject({
        status: 'failed',
        chunk_residuals: [1],
        residuals: [{ table_name: 'app.reviews', column_name: 'body' }],
      });
    } finally {
      await db.query(`drop policy reviews_read on app.reviews; drop policy reviews_write on app.reviews;
                      alter table app.reviews no force row level security; alter table app.reviews disable row level security`);
    }
  });

  it("a parent's key the chunk writes (set:999) lets an orphan row join the subject: the chunk reports it", async () => {
    await db.query(`
      create table app.parcels (id bigint primary key, customer_id bigint not null, label text);
      create table app.parcel_notes (id bigint primary key, parcel_id bigint not null, note text);
      create index parcel_notes_parcel_id_idx on app.parcel_notes (parcel_id);
      insert into app.parcels values (10, 10, 'parcel of user10');
      insert into app.parcel_notes values (1, 10, 'note one'), (2, 999, 'orphan note about user10');
      select pii.register_table('app.parcels', 'customer_id', 'anonymize', unenforced_join => true);
      select pii.register_column('app.parcels', 'id', 'set:999', 'hide', 'identifier');
      select pii.register_child_table('app.parcel_notes', 'app.parcels', 'parcel_id', 'anonymize', parent_column => 'id', unenforced_join => true);
      select pii.register_column('app.parcel_notes', 'note', 'null', 'hide', 'free_text')`);
    try {
      expect(await erase(['10'])).toMatchObject({
        status: 'failed',
        chunk_residuals: [1],
        residuals: [{ table_name: 'app.parcel_notes', column_name: 'note' }],
      });
    } finally {
      await db.query(`select pii.unregister_table('app.parcel_notes'), pii.unregister_table('app.parcels');
                      drop table app.parcel_notes, app.parcels`);
    }
  });
});
