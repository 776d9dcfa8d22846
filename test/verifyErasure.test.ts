// pii.verify_erasure: every residual trace of a request's subjects, found by keyed hash
// (the raw keys are gone by then). Empty = verified.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('verify_erasure');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
});
afterAll(() => db?.drop());

async function erase(keys: string[], mode = 'erase'): Promise<{ id: string; status: string }> {
  const { rows } = await db.query('select pii.request_erasure($1::text[], mode => $2) as id', [keys, mode]);
  const id = rows[0].id;
  while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
  const { rows: f } = await db.query('select pii.finish_request($1) as s', [id]);
  return { id, status: f[0].s };
}

async function verify(id: string) {
  const { rows } = await db.query('select * from pii.verify_erasure($1) order by table_name, column_name nulls first', [
    id,
  ]);
  return rows as { table_name: string; column_name: string | null; subject_hash: string; detail: string }[];
}

async function hashOf(key: string): Promise<string> {
  return (await db.query(`select encode(pii_internal.subject_hash(null, $1), 'hex') as h`, [key])).rows[0].h;
}

/** Writes as a sync job would with the guards switched off (pii.set_guard … 'off'), then switches them back. */
async function bypassGuards(sql: string): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query(
      `select table_name, guard_mode from pii.registered_tables where guard_mode <> 'off' order by 1`,
    );
    for (const r of rows) await client.query(`select pii.set_guard($1, 'off')`, [r.table_name]);
    await client.query(sql);
    for (const r of rows) await client.query(`select pii.set_guard($1, $2)`, [r.table_name, r.guard_mode]);
    await client.query('commit');
  } finally {
    client.release();
  }
}

describe('pii.verify_erasure', () => {
  it('is empty after a clean request, and finish_request recorded it (done, residual_count 0)', async () => {
    const { id, status } = await erase(['11', '12', '9011']);
    expect(status).toBe('done');
    expect(await verify(id)).toEqual([]);
    const { rows } = await db.query(
      'select residual_count, verified_at is not null as verified from pii.requests where id = $1',
      [id],
    );
    expect(rows[0]).toEqual({ residual_count: 0, verified: true });
  });

  it('reports every registered column put back out of its erased state, with table, column and keyed hash', async () => {
    const { id } = await erase(['13', '14']);
    expect(await verify(id)).toEqual([]);
    await bypassGuards(`
      update app.customers set email = 'user13@example.com', status = 'ACTIVE',
             external_ref = '00000000-0000-4000-8000-000000000013' where id = 13;
      update app.orders set shipping_name = 'First13 Last13' where id = 131;
      update app.order_items set gift_message = 'for First13' where id = 1311;
      update app.engravings set engraving = 'To 1311' where id = 1311;`);
    const h = await hashOf('13');
    expect(await verify(id)).toEqual([
      {
        table_name: 'app.customers',
        column_name: 'email',
        subject_hash: h,
        detail: 'not erased (erase strategy null)',
      },
      {
        table_name: 'app.customers',
        column_name: 'external_ref',
        subject_hash: h,
        detail: 'not erased (erase strategy pseudonym)',
      },
      {
        table_name: 'app.customers',
        column_name: 'status',
        subject_hash: h,
        detail: 'not erased (erase strategy set:DEACTIVATED)',
      },
      {
        table_name: 'app.engravings',
        column_name: 'engraving',
        subject_hash: h,
        detail: 'not erased (erase strategy set:)',
      },
      {
        table_name: 'app.order_items',
        column_name: 'gift_message',
        subject_hash: h,
        detail: 'not erased (erase strategy null)',
      },
      {
        table_name: 'app.orders',
        column_name: 'shipping_name',
        subject_hash: h,
        detail: 'not erased (erase strategy null)',
      },
    ]);
    // The hash is the one the request's items show, and was_erased_hash resolves it.
    const { rows } = await db.query('select subject_hash from pii.request_items($1)', [id]);
    expect(rows.map((r) => r.subject_hash)).toContain(h);
    expect((await db.query('select erased, request_id from pii.was_erased_hash($1)', [h])).rows[0]).toEqual({
      erased: true,
      request_id: id,
    });
    // Erasing the subject again makes the request verify again.
    await db.query(`select * from pii.erase_subjects(array['13'])`);
    expect(await verify(id)).toEqual([]);
  });

  it("reports a row put back in a table whose rows erasure deletes as 'row not deleted'", async () => {
    const { id } = await erase(['15', '16']);
    await bypassGuards(`
      insert into app.events (customer_id, occurred_at, kind, payload) values (15, '2026-10-03', 'resync', '{"page": "/"}');
      insert into app.loyalty_points (id, customer_id, points, reason) values (990015, 15, 1, 'resync');`);
    const h = await hashOf('15');
    expect(await verify(id)).toEqual([
      { table_name: 'app.events', column_name: null, subject_hash: h, detail: 'row not deleted' },
      { table_name: 'app.loyalty_points', column_name: null, subject_hash: h, detail: 'row not deleted' },
    ]);
  });

  it('reports an identifier of the subject found at erasure time in an unregistered text or jsonb column; the request ends failed', async () => {
    await db.query(`alter table app.customers add column alt_contact text`);
    await db.query(`alter table app.orders add column meta jsonb`);
    await db.query(`update app.customers set alt_contact = 'reach me at user17@example.com' where id = 17`);
    await db.query(`update app.orders set meta = '{"contact": {"phone": "+44 7700 900017"}}' where id = 171`);
    await db.query(`update app.order_items set sku = 'SKU user17@example.com' where id = 1721`);
    await db.query(`update app.customers set alt_contact = 'no identifier here' where id = 18`);

    const { id, status } = await erase(['17', '18']);
    expect(status).toBe('failed');
    const h = await hashOf('17');
    const found = await verify(id);
    const detail = 'identifier of the subject found in an unregistered column';
    expect(found).toEqual([
      { table_name: 'app.customers', column_name: 'alt_contact', subject_hash: h, detail },
      { table_name: 'app.order_items', column_name: 'sku', subject_hash: h, detail },
      { table_name: 'app.orders', column_name: 'meta', subject_hash: h, detail },
    ]);
    expect(JSON.stringify(found)).not.toMatch(/user17|7700/);
    const { rows } = await db.query('select status, residual_count, error from pii.request_status($1)', [id]);
    expect(rows[0]).toEqual({
      status: 'failed',
      residual_count: 3,
      error: 'verification found 3 residual trace(s): see pii.verify_erasure',
    });
    // The stored residuals keep no identifier either.
    const { rows: raw } = await db.query(
      `select count(*)::int as n from pii_internal.request_residuals r where strpos(r::text, 'user17') > 0 or strpos(r::text, '7700') > 0`,
    );
    expect(raw[0].n).toBe(0);
  });

  it('does not report a subject who legitimately came back (pii.allow_return)', async () => {
    const { id } = await erase(['19', '20']);
    await db.query(`select pii.allow_return('19')`);
    await db.query(`update app.customers set email = 'new19@example.com', status = 'ACTIVE' where id = 19`);
    expect(await verify(id)).toEqual([]);
    // The other subject of the request is still checked.
    await bypassGuards(`update app.customers set email = 'user20@example.com' where id = 20`);
    expect((await verify(id)).map((r) => [r.column_name, r.subject_hash])).toEqual([['email', await hashOf('20')]]);
  });

  it('refuses an unknown request id with 42704', async () => {
    const unknown = randomUUID();
    await expectPgError(
      db.query('select * from pii.verify_erasure($1)', [unknown]),
      '42704',
      new RegExp(`erasure request ${unknown} does not exist`),
    );
    await expectPgError(db.query('select * from pii.verify_erasure(null)'), '42704', /does not exist/);
  });

  it("finds rows re-inserted for a subject whose own row was deleted (mode 'delete')", async () => {
    const { id } = await erase(['21'], 'delete');
    expect(await verify(id)).toEqual([]);
    await bypassGuards(
      `insert into app.events (customer_id, occurred_at, kind, payload) values (21, '2026-10-03', 'resync', '{"email": "user21@example.com"}')`,
    );
    expect(await verify(id)).toEqual([
      { table_name: 'app.events', column_name: null, subject_hash: await hashOf('21'), detail: 'row not deleted' },
    ]);
  });

  it('finds its subjects again through their tombstone buckets, and by hashing every key while a tombstone has none', async () => {
    // pii_internal.subjects_by_hash HMACs only the subject table's keys whose tombstone
    // bucket one of the request's subjects has; a wrong bucket set would lose subject 30.
    const { id } = await erase(['30', '31']);
    const buckets = async () =>
      (
        await db.query(
          `select count(*)::int as n, count(bucket)::int as with_bucket from pii_internal.tombstones
            where subject_hash in (pii_internal.subject_hash(null, '30'), pii_internal.subject_hash(null, '31'))`,
        )
      ).rows[0];
    expect(await buckets()).toEqual({ n: 2, with_bucket: 2 });
    // Found in the subject table itself (verify_erasure would also find them through the
    // orders they still have, so the step is checked on its own).
    const byHash = async () =>
      (
        await db.query(
          `select f.subject_keys as keys from pii_internal.subjects_by_hash(
             array[pii_internal.subject_hash(null, '31'), pii_internal.subject_hash(null, '30')], null) f`,
        )
      ).rows[0].keys.sort();
    expect(await byHash()).toEqual(['30', '31']);
    await bypassGuards(`update app.customers set email = 'user30@example.com' where id = 30`);
    const residual = [
      {
        table_name: 'app.customers',
        column_name: 'email',
        subject_hash: await hashOf('30'),
        detail: 'not erased (erase strategy null)',
      },
    ];
    expect(await verify(id)).toEqual(residual);
    // A tombstone without a bucket (written before buckets existed, or restored from the
    // ledger): no narrowing by buckets, every key is hashed, and 30 is still found.
    await db.query(
      `update pii_internal.tombstones set bucket = null where subject_hash = pii_internal.subject_hash(null, '30')`,
    );
    expect(await buckets()).toEqual({ n: 2, with_bucket: 1 });
    expect(await byHash()).toEqual(['30', '31']);
    expect(await verify(id)).toEqual(residual);
  });

  it('lets a request with cleaned-up residuals be retried to done', async () => {
    await db.query(`alter table app.customers add column if not exists alt_contact text`);
    await db.query(`update app.customers set alt_contact = 'reach me at user22@example.com' where id = 22`);
    const { id, status } = await erase(['22']);
    expect(status).toBe('failed');
    await db.query(`update app.customers set alt_contact = null where id = 22`);
    await db.query('select pii.retry_request($1)', [id]);
    while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
    expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');
  });
});

describe('pii_internal.subjects_by_hash with a scoped subject table', () => {
  let scoped: TestDatabase;
  beforeAll(async () => {
    scoped = await createTestDatabase('verify_erasure_scoped');
    await scoped.query(`
      create schema sc;
      create table sc.members (tenant text not null, id bigint not null, email text, primary key (tenant, id));
      insert into sc.members values ('a', 1, 'one@a.example'), ('b', 1, 'one@b.example'), ('a', 2, 'two@a.example');
      select pii.register_subject_table('sc.members', 'id', scope_column => 'tenant');
      select pii.register_column('sc.members', 'email', 'null');
      select * from pii.erase_subjects(array['1', '2'], array['b', 'a']);`);
  });
  afterAll(() => scoped?.drop());

  it('finds each (scope, key) through the buckets, and by hashing every key while a tombstone has none', async () => {
    const byHash = async () =>
      (
        await scoped.query(
          `select f.subject_keys as keys, f.scopes from pii_internal.subjects_by_hash(
             array[pii_internal.subject_hash('b', '1'), pii_internal.subject_hash('a', '2')], null) f`,
        )
      ).rows[0];
    const sorted = (r: { keys: string[]; scopes: string[] }) => r.keys.map((k, i) => `${r.scopes[i]}/${k}`).sort();
    expect(sorted(await byHash())).toEqual(['a/2', 'b/1']);
    await scoped.query(
      `update pii_internal.tombstones set bucket = null where subject_hash = pii_internal.subject_hash('b', '1')`,
    );
    expect(sorted(await byHash())).toEqual(['a/2', 'b/1']);
  });
});
