// pii.erase_subjects on a bigint-keyed CRM: exact row contents after erasure for every
// strategy and table kind, set-based statements, bad input refused with nothing changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';

let db: TestDatabase;
let erased: { table_name: string; rows_affected: string }[];

beforeAll(async () => {
  db = await createTestDatabase('erase_subjects');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  erased = (await db.query(`select table_name, rows_affected from pii.erase_subjects(array['3', '4', '999'])`)).rows;
});
afterAll(() => db.drop());

describe('pii.erase_subjects (mode erase)', () => {
  it('reports rows affected per table, children first and the subject table last', () => {
    expect(erased).toEqual([
      { table_name: 'app.engravings', rows_affected: '4' },
      { table_name: 'app.order_items', rows_affected: '8' },
      { table_name: 'app.events', rows_affected: '8' },
      { table_name: 'app.orders', rows_affected: '4' },
      { table_name: 'app.loyalty_points', rows_affected: '6' },
      { table_name: 'app.customers', rows_affected: '2' },
    ]);
  });

  it('keeps the profile row with every PII column in its erased state', async () => {
    const { rows } = await db.query(
      `select id, email, first_name, last_name, phone, birth_date, status, email_opt_out, sms_opt_out, notes, created_at,
              external_ref::text ~ '^[0-9a-f-]{36}$' and external_ref <> ('00000000-0000-4000-8000-' || lpad(id::text, 12, '0'))::uuid as ref_pseudonymised
       from app.customers where id in (3, 4) order by id`,
    );
    for (const [i, id] of [3, 4].entries()) {
      expect(rows[i]).toEqual({
        id: String(id),
        email: null,
        first_name: null,
        last_name: null,
        phone: null,
        birth_date: null,
        status: 'DEACTIVATED',
        email_opt_out: true,
        sms_opt_out: true,
        notes: null,
        created_at: new Date('2026-01-01T00:00:00Z'),
        ref_pseudonymised: true,
      });
    }
  });

  it('pseudonyms are deterministic and keyed: the stored value is the keyed pseudonym of the original, no plain hash', async () => {
    // The pseudonym of customer 3's original external_ref, computed again from the value alone.
    // The builder binds the pseudonym key as $3/$4 (erase_plan's parameters); read it from pii_internal.pseudonym_key here.
    const expr = ((await db.query(`select pii_internal.pseudonym_sql('x.v', true) as e`)).rows[0].e as string)
      .replaceAll('$3', '(select inner_key from pii_internal.pseudonym_key)')
      .replaceAll('$4', '(select outer_key from pii_internal.pseudonym_key)');
    const again = `select ${expr} as p from (values ('00000000-0000-4000-8000-000000000003'::uuid)) x (v)`;
    const first = (await db.query(again)).rows[0].p;
    expect((await db.query(again)).rows[0].p).toBe(first);
    const { rows } = await db.query(
      `select pii_internal.hmac('x') <> sha256('x'::bytea) as keyed,
              (select external_ref from app.customers where id = 3) as stored,
              (select count(distinct external_ref) from app.customers where id in (3, 4)) as distinct_refs`,
    );
    expect(rows[0]).toEqual({ keyed: true, stored: first, distinct_refs: '2' });
  });

  it('leaves every other customer untouched', async () => {
    const { rows } = await db.query(
      `select count(*) filter (where email = 'user' || id || '@example.com' and status = 'ACTIVE' and first_name = 'First' || id
                                 and external_ref = ('00000000-0000-4000-8000-' || lpad(id::text, 12, '0'))::uuid) as intact,
              count(*) as total
       from app.customers where id not in (3, 4)`,
    );
    expect(rows[0]).toEqual({ intact: '8', total: '8' });
  });

  it("deletes behavioural history in every partition, and only the subjects'", async () => {
    const { rows } = await db.query(
      `select tableoid::regclass::text as part, count(*) filter (where customer_id in (3, 4)) as erased, count(*) as total
       from app.events group by 1 order by 1`,
    );
    expect(rows).toEqual([
      { part: 'app.events_2026_09', erased: '0', total: '16' },
      { part: 'app.events_2026_10', erased: '0', total: '16' },
    ]);
    const loyalty = await db.query(
      `select count(*) filter (where customer_id in (3, 4)) as erased, count(*) as total from app.loyalty_points`,
    );
    expect(loyalty.rows[0]).toEqual({ erased: '0', total: '24' });
  });

  it('anonymizes orders in place: record and amounts kept, PII nulled', async () => {
    const { rows } = await db.query(
      `select id, customer_id, total, shipping_name, shipping_address from app.orders where customer_id in (3, 4, 5) order by id`,
    );
    expect(rows).toEqual([
      { id: '31', customer_id: '3', total: '10.00', shipping_name: null, shipping_address: null },
      { id: '32', customer_id: '3', total: '20.00', shipping_name: null, shipping_address: null },
      { id: '41', customer_id: '4', total: '10.00', shipping_name: null, shipping_address: null },
      { id: '42', customer_id: '4', total: '20.00', shipping_name: null, shipping_address: null },
      { id: '51', customer_id: '5', total: '10.00', shipping_name: 'First5 Last5', shipping_address: '5 High Street' },
      { id: '52', customer_id: '5', total: '20.00', shipping_name: 'First5 Last5', shipping_address: '5 High Street' },
    ]);
  });

  it('reaches tables through parents, two levels deep', async () => {
    const items = await db.query(
      `select id, sku, quantity, gift_message from app.order_items where order_id in (31, 51) order by id`,
    );
    expect(items.rows).toEqual([
      { id: '311', sku: 'SKU-1', quantity: 1, gift_message: null },
      { id: '312', sku: 'SKU-2', quantity: 2, gift_message: null },
      { id: '511', sku: 'SKU-1', quantity: 1, gift_message: 'for First5 Last5' },
      { id: '512', sku: 'SKU-2', quantity: 2, gift_message: 'for First5 Last5' },
    ]);
    const engravings = await db.query(
      `select id, engraving from app.engravings where id in (311, 321, 511) order by id`,
    );
    expect(engravings.rows).toEqual([
      { id: '311', engraving: '' },
      { id: '321', engraving: '' },
      { id: '511', engraving: 'To 511' },
    ]);
  });

  it('leaves unregistered aggregates untouched', async () => {
    const { rows } = await db.query(`select * from app.daily_revenue`);
    expect(rows).toEqual([{ day: new Date('2026-10-01T00:00:00Z'), orders: 20, revenue: '300.00' }]);
  });

  it('tombstones every requested subject by keyed hash, including unknown keys', async () => {
    const { rows } = await db.query(
      `select count(*) as n, count(*) filter (where erased_at is not null) as erased from pii_internal.tombstones`,
    );
    expect(rows[0]).toEqual({ n: '3', erased: '3' });
    const known = await db.query(`select erased from pii.was_erased('4')`);
    expect(known.rows).toEqual([{ erased: true }]);
    const other = await db.query(`select erased from pii.was_erased('5')`);
    expect(other.rows).toEqual([{ erased: false }]);
  });

  it('audits counts, never keys', async () => {
    const { rows } = await db.query(`select details from pii.audit where action = 'erase_subjects'`);
    expect(rows).toHaveLength(1);
    expect(rows[0].details).toMatchObject({
      mode: 'erase',
      subjects: 3,
      matched: 2,
      rows: { 'app.customers': 2, 'app.events': 8 },
    });
    expect(JSON.stringify(rows[0].details)).not.toMatch(/999/);
  });

  it('is idempotent: erasing again changes no value', async () => {
    const before = (await db.query(`select md5(string_agg(c::text, ',' order by id)) as h from app.customers c`))
      .rows[0].h;
    await db.query(`select * from pii.erase_subjects(array['3'])`);
    const after = (await db.query(`select md5(string_agg(c::text, ',' order by id)) as h from app.customers c`)).rows[0]
      .h;
    expect(after).toBe(before);
  });
});

describe('pii.erase_subjects (mode delete)', () => {
  it('removes the subject row and every registered row, children included', async () => {
    const { rows } = await db.query(
      `select table_name, rows_affected from pii.erase_subjects(array['6'], mode => 'delete')`,
    );
    expect(rows).toEqual([
      { table_name: 'app.engravings', rows_affected: '2' },
      { table_name: 'app.order_items', rows_affected: '4' },
      { table_name: 'app.events', rows_affected: '4' },
      { table_name: 'app.orders', rows_affected: '2' },
      { table_name: 'app.loyalty_points', rows_affected: '3' },
      { table_name: 'app.customers', rows_affected: '1' },
    ]);
    const left = await db.query(
      `select (select count(*) from app.customers where id = 6) + (select count(*) from app.orders where customer_id = 6)
            + (select count(*) from app.order_items where order_id in (61, 62)) + (select count(*) from app.events where customer_id = 6) as n`,
    );
    expect(left.rows[0].n).toBe('0');
  });
});

describe('set-based execution', () => {
  it('runs one statement per table whatever the number of keys (plan is per table)', async () => {
    const { rows } = await db.query(`select table_name, action, statement from pii_internal.erase_plan('erase')`);
    expect(rows.map((r) => r.table_name)).toEqual([
      'app.engravings',
      'app.order_items',
      'app.events',
      'app.orders',
      'app.loyalty_points',
      'app.customers',
    ]);
    for (const r of rows) expect(r.statement).toMatch(/operator\(pg_catalog\.=\) any \(\$1::bigint\[\]\)/);
  });

  it('erases 50,000 keys in one call', async () => {
    await db.query(
      `insert into app.customers (id, email) select i, 'bulk' || i || '@example.com' from generate_series(100001, 150000) i`,
    );
    await db.query(
      `insert into app.orders (id, customer_id, total, shipping_name) select i, i, 1, 'n' from generate_series(100001, 150000) i`,
    );
    const { rows } = await db.query(
      `select * from pii.erase_subjects(array(select i::text from generate_series(100001, 150000) i))`,
    );
    expect(rows.find((r) => r.table_name === 'app.customers')?.rows_affected).toBe('50000');
    expect(rows.find((r) => r.table_name === 'app.orders')?.rows_affected).toBe('50000');
    const left = await db.query(`select count(*) as n from app.customers where id > 100000 and email is not null`);
    expect(left.rows[0].n).toBe('0');
  });

  it('uses the subject index for lookups', async () => {
    const client = await db.pool.connect();
    try {
      // The fixture is tiny; forbid sequential scans to see that an index path exists.
      await client.query('set enable_seqscan = off');
      const { rows } = await client.query(
        `select statement from pii_internal.erase_plan('erase') where table_name = 'app.events'`,
      );
      const plan = await client.query(`explain (format json) ${rows[0].statement.replace(/\$1/g, "'{1,2}'::text[]")}`);
      expect(JSON.stringify(plan.rows[0])).toMatch(/events_2026_09_customer_id_idx/);
    } finally {
      client.release();
    }
  });
});

describe('bad input changes nothing', () => {
  const snapshot = async () =>
    (
      await db.query(`select (select md5(string_agg(c::text, ',' order by id)) from app.customers c) as c,
                            (select count(*) from pii_internal.tombstones) as t, (select count(*) from pii.audit) as a`)
    ).rows[0];

  it('a key that does not cast to the key type', async () => {
    const before = await snapshot();
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['7', 'x7'])`),
      '22P02',
      /subject key(s must be valid bigint| #2 is not a valid bigint)/,
    );
    expect(await snapshot()).toEqual(before);
  });
  it('a NULL key, NULL array, unknown mode, scopes on an unscoped install', async () => {
    const before = await snapshot();
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['7', null])`),
      '22004',
      /subject key #2 is NULL/,
    );
    await expectPgError(db.query(`select * from pii.erase_subjects(null)`), '22004', /subject_keys must not be NULL/);
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['7'], mode => 'shred')`),
      '22023',
      /mode must be erase or delete, not "shred"/,
    );
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['7'], array['1'])`),
      '22023',
      /scopes given, but the subject table app\.customers is not scoped/,
    );
    expect(await snapshot()).toEqual(before);
  });
  it('an oversized batch', async () => {
    const before = await snapshot();
    await db.query('update pii.settings set max_keys_per_call = 10');
    try {
      await expectPgError(
        db.query(`select * from pii.erase_subjects(array(select i::text from generate_series(1, 11) i))`),
        '54000',
        /11 subject keys in one call; the limit is 10/,
      );
    } finally {
      await db.query('update pii.settings set max_keys_per_call = 100000');
    }
    expect(await snapshot()).toEqual(before);
  });
});
