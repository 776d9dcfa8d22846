// Lethe fitted to a schema that is a graph (issue 12): the rental shop, where customers,
// staff and stores share address rows and payments are partitioned by month.
// pii.register_table / register_child_table (joins from foreign keys, shared), pii.erase_subjects
// (rows others share are kept), pii.lint (plans that cannot run), guards (shared rows).
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { changedIds, loadRentalShop, shopChecksums } from './helpers/rentalShop.js';

let db: TestDatabase;

/** Erased: customers 1 (address 1, shared with staff 1), 2 (address 2, staff 2), 3 (address 3,
 * store 1), 4 (address 4, theirs alone), 11 and 31 (address 11: both erased), 12 (address 12,
 * shared with customer 32, who stays). */
const erased = [1, 2, 3, 4, 11, 12, 31];

const registryState = async () =>
  (
    await db.query(`select (select count(*) from pii.tables)::int as tables, (select count(*) from pii.columns)::int as columns,
                           (select count(*) from pii.audit)::int as audit`)
  ).rows[0];

async function inRolledBackTransaction<T>(fn: (q: TestDatabase['query']) => Promise<T>): Promise<T> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    return await fn((sql, params) => client.query(sql, params));
  } finally {
    await client.query('rollback');
    client.release();
  }
}

describe('rental shop: erasure of customers', () => {
  beforeAll(async () => {
    db = await createTestDatabase('rental_shop');
    await loadRentalShop(db);
    await loadFixture(db, 'rentalShop_register.sql');
  });
  afterAll(() => db.drop());

  it('register_child_table takes the join from the foreign key the parent holds (customer.address_id -> address)', async () => {
    const { rows } = await db.query(
      `select table_name, link, parent_fk_column, parent_key_column, foreign_key, unenforced_join, shared, has_index
       from pii.registered_tables where table_name in ('shop.address', 'shop.rental') order by 1`,
    );
    expect(rows).toEqual([
      {
        table_name: 'shop.address',
        link: 'referenced by parent',
        parent_fk_column: 'address_id',
        parent_key_column: 'address_id',
        foreign_key: 'customer_address_id_fkey',
        unenforced_join: false,
        shared: 'keep',
        has_index: true,
      },
      {
        table_name: 'shop.rental',
        link: 'direct',
        parent_fk_column: null,
        parent_key_column: null,
        foreign_key: 'rental_customer_id_fkey',
        unenforced_join: false,
        shared: 'keep',
        has_index: true,
      },
    ]);
  });

  it('erase_subjects orders statements by the foreign keys: payments, rentals, customers, then addresses', async () => {
    const { rows } = await db.query(
      `select table_name, action, capture is not null as captured from pii_internal.erase_plan('delete')`,
    );
    expect(rows).toEqual([
      { table_name: 'shop.payment', action: 'delete', captured: false },
      { table_name: 'shop.rental', action: 'delete', captured: false },
      { table_name: 'shop.customer', action: 'delete', captured: false },
      { table_name: 'shop.address', action: 'delete', captured: true },
    ]);
  });

  it('erase_subjects in mode delete runs with the reverse reference, deleting only addresses no one else references', async () => {
    const result = await inRolledBackTransaction(async (q) => {
      const before = await shopChecksums({ ...db, query: q });
      const out = (await q(`select * from pii.erase_subjects($1::text[], mode => 'delete')`, [erased.map(String)]))
        .rows;
      const after = await shopChecksums({ ...db, query: q });
      return { out, before, after };
    });
    expect(result.out).toEqual([
      { table_name: 'shop.payment', rows_affected: '21', shared_kept: '0' },
      { table_name: 'shop.rental', rows_affected: '21', shared_kept: '0' },
      { table_name: 'shop.customer', rows_affected: '7', shared_kept: '0' },
      { table_name: 'shop.address', rows_affected: '2', shared_kept: '4' },
    ]);
    expect(changedIds(result.before.address, result.after.address)).toEqual([4, 11]);
    expect(changedIds(result.before.customer, result.after.customer)).toEqual(erased);
    expect(changedIds(result.before.staff, result.after.staff)).toEqual([]);
    expect(changedIds(result.before.store, result.after.store)).toEqual([]);
  });

  it('erase_subjects changes 0 rows the erased customers do not own (checksums), and reports the shared rows kept', async () => {
    const before = await shopChecksums(db);
    const { rows } = await db.query(`select * from pii.erase_subjects($1::text[])`, [erased.map(String)]);
    const after = await shopChecksums(db);

    expect(rows).toEqual([
      { table_name: 'shop.payment', rows_affected: '21', shared_kept: '0' },
      { table_name: 'shop.rental', rows_affected: '21', shared_kept: '0' },
      { table_name: 'shop.customer', rows_affected: '7', shared_kept: '0' },
      { table_name: 'shop.address', rows_affected: '2', shared_kept: '4' },
    ]);
    // Addresses 1, 2 (staff), 3 (a store) and 12 (customer 32) are shared: intact.
    expect(changedIds(before.address, after.address)).toEqual([4, 11]);
    expect(changedIds(before.customer, after.customer)).toEqual(erased);
    expect(changedIds(before.staff, after.staff)).toEqual([]);
    expect(changedIds(before.store, after.store)).toEqual([]);
    const rentalsOfOthers = [...before.rental.keys()].filter((id) => !erased.includes(1 + Math.floor((id - 1) / 3)));
    expect(rentalsOfOthers.filter((id) => after.rental.get(id) !== before.rental.get(id))).toEqual([]);
    expect(after.rental.size).toBe(before.rental.size - 21);
    expect(after.payment.size).toBe(before.payment.size - 21);

    const exclusive = (
      await db.query(`select address, address2, postal_code, phone from shop.address where address_id in (4, 11)`)
    ).rows;
    expect(exclusive).toEqual([
      { address: '', address2: null, postal_code: null, phone: '' },
      { address: '', address2: null, postal_code: null, phone: '' },
    ]);
    const audit = (
      await db.query(
        `select details -> 'shared_kept' as shared from pii.audit where action = 'erase_subjects' order by id desc limit 1`,
      )
    ).rows[0];
    expect(audit.shared).toEqual({ 'shop.address': 4 });
  });

  it('erasing the same customers again writes nothing', async () => {
    const { rows } = await db.query(`select table_name, rows_affected from pii.erase_subjects($1::text[])`, [
      erased.map(String),
    ]);
    expect(rows.map((r) => Number(r.rows_affected))).toEqual([0, 0, 0, 0]);
  });

  it('guards leave a store’s write to its shared address alone, and scrub the erased customer’s own address', async () => {
    // Address 3: store 1 and erased customer 3; address 12: customer 32 and erased customer 12.
    await db.query(`update shop.address set phone = '+1 555 0999', address = '3 New Street' where address_id = 3`);
    await db.query(`update shop.address set phone = '+1 555 0888' where address_id = 12`);
    // Address 4 belongs to erased customer 4 alone: a sync writing it back is scrubbed.
    await db.query(`update shop.address set phone = '+1 555 0777', address = '4 Main Street' where address_id = 4`);
    const { rows } = await db.query(
      `select address_id, address, phone from shop.address where address_id in (3, 4, 12) order by 1`,
    );
    expect(rows).toEqual([
      { address_id: 3, address: '3 New Street', phone: '+1 555 0999' },
      { address_id: 4, address: '', phone: '' },
      { address_id: 12, address: '12 Main Street', phone: '+1 555 0888' },
    ]);
  });

  it('request_status reports the shared rows kept per table', async () => {
    const id = (await db.query(`select pii.request_erasure(array['5', '25']) as id`)).rows[0].id as string;
    while (Number((await db.query(`select pii.process_request_chunk($1::uuid, 100) as n`, [id])).rows[0].n) > 0);
    await db.query(`select pii.finish_request($1::uuid)`, [id]);
    const status = (await db.query(`select rows_affected, shared_kept from pii.request_status($1::uuid)`, [id]))
      .rows[0];
    // Customer 5's address is theirs; customer 25's address (25) is theirs too.
    expect(status.shared_kept).toEqual({});
    expect(status.rows_affected['shop.address']).toBe(2);
    const id2 = (await db.query(`select pii.request_erasure(array['32']) as id`)).rows[0].id as string;
    while (Number((await db.query(`select pii.process_request_chunk($1::uuid, 100) as n`, [id2])).rows[0].n) > 0);
    // Address 12 is still referenced by customer 12, erased in another batch: that row belongs
    // to nobody alive, so with customer 32 the address is theirs alone and erased.
    const status2 = (await db.query(`select rows_affected, shared_kept from pii.request_status($1::uuid)`, [id2]))
      .rows[0];
    expect(status2.rows_affected['shop.address']).toBe(1);
    expect(status2.shared_kept).toEqual({});
    await db.query(`select pii.finish_request($1::uuid)`, [id2]);
    expect((await db.query(`select * from pii.verify_erasure($1::uuid)`, [id2])).rows).toEqual([]);
    expect((await db.query(`select phone from shop.address where address_id = 12`)).rows).toEqual([{ phone: '' }]);
  });
});

describe('rental shop: rows shared by subjects erased in different batches', () => {
  beforeAll(async () => {
    db = await createTestDatabase('rental_shop_batches');
    await loadRentalShop(db);
    await loadFixture(db, 'rentalShop_register.sql');
  });
  afterAll(() => db.drop());

  const erase = async (keys: string[], kind?: string) =>
    (
      await db.query(
        `select table_name, rows_affected::int, shared_kept::int from pii.erase_subjects($1::text[], kind => $2)`,
        [keys, kind ?? null],
      )
    ).rows.find((r) => r.table_name === 'shop.address');

  it('an address is erased with the last of the customers sharing it; a store’s address is never touched', async () => {
    const before = await shopChecksums(db);
    // Batch 1: customer 13 (address 13, shared with customer 33) and customer 3 (address 3, store 1's).
    expect(await erase(['13', '3'])).toMatchObject({ rows_affected: 0, shared_kept: 2 });
    const middle = await shopChecksums(db);
    expect(changedIds(before.address, middle.address)).toEqual([]);
    // Batch 2: customer 33. Address 13's other reference is erased customer 13's row.
    expect(await erase(['33'])).toMatchObject({ rows_affected: 1, shared_kept: 0 });
    const after = await shopChecksums(db);
    expect(changedIds(before.address, after.address)).toEqual([13]);
    expect(changedIds(before.customer, after.customer)).toEqual([3, 13, 33]);
    expect(changedIds(before.store, after.store)).toEqual([]);
    expect(changedIds(before.staff, after.staff)).toEqual([]);
    // Erasing customer 3 again: store 1 still references address 3.
    expect(await erase(['3'])).toMatchObject({ rows_affected: 0, shared_kept: 1 });
    expect((await shopChecksums(db)).address).toEqual(after.address);
  });

  it('a customer allowed back owns the shared address again', async () => {
    expect(await erase(['14'])).toMatchObject({ rows_affected: 0, shared_kept: 1 });
    await db.query(`select pii.allow_return('14')`);
    const before = await shopChecksums(db);
    expect(await erase(['34'])).toMatchObject({ rows_affected: 0, shared_kept: 1 });
    expect(changedIds(before.address, (await shopChecksums(db)).address)).toEqual([]);
  });

  it('rows of another kind (staff) are owners: erasing customer 2 leaves the address staff 2 lives at', async () => {
    // An unenforced join registered while customers were the only kind (lint names its subject table).
    await db.query(`create table shop.visit (customer_id integer, seen_at timestamptz);
                    create index on shop.visit (customer_id);
                    select pii.register_table('shop.visit', 'customer_id', 'delete', unenforced_join => true);`);
    await db.query(`select pii.register_subject_table('shop.staff', 'staff_id', kind => 'staff');
                    select pii.register_column('shop.staff', 'email', 'null');`);
    expect((await db.query(`select table_name, problem from pii.lint() where problem ~ 'unenforced'`)).rows).toEqual([
      {
        table_name: 'shop.visit',
        problem:
          'unenforced join to shop.customer: no foreign key backs it, so Lethe cannot tell who else owns these rows',
      },
    ]);
    const before = await shopChecksums(db);
    expect(await erase(['2'], 'customer')).toMatchObject({ rows_affected: 0, shared_kept: 1 });
    const after = await shopChecksums(db);
    expect(changedIds(before.address, after.address)).toEqual([]);
    expect(changedIds(before.customer, after.customer)).toEqual([2]);
    expect(changedIds(before.staff, after.staff)).toEqual([]);
  });
});

describe('rental shop: registrations that are refused (SQLSTATE, message, nothing written)', () => {
  beforeAll(async () => {
    db = await createTestDatabase('rental_shop_refused');
    await loadRentalShop(db);
    await db.query(`select pii.register_subject_table('shop.customer', 'customer_id')`);
  });
  afterAll(() => db.drop());
  let state: Awaited<ReturnType<typeof registryState>>;
  beforeEach(async () => {
    state = await registryState();
  });
  const unchanged = async () => expect(await registryState()).toEqual(state);

  it('register_table refuses a table no foreign key links to the subject (staff)', async () => {
    await expectPgError(
      db.query(`select pii.register_table('shop.staff', 'staff_id', 'anonymize')`),
      '42830',
      /no foreign key backs the join of shop\.staff\.staff_id to shop\.customer\.customer_id/,
    );
    await unchanged();
  });

  it('register_table refuses an unenforced join of columns whose types differ', async () => {
    await expectPgError(
      db.query(`select pii.register_table('shop.staff', 'username', 'anonymize', unenforced_join => true)`),
      '42804',
      /cannot join shop\.staff\.username \(text\) to shop\.customer\.customer_id \(integer\): the types differ/,
    );
    await unchanged();
  });

  it('register_child_table refuses an unenforced join without both columns', async () => {
    await expectPgError(
      db.query(`select pii.register_child_table('shop.staff', 'shop.customer', 'staff_id', unenforced_join => true)`),
      '22023',
      /an unenforced join of shop\.staff to shop\.customer needs both columns/,
    );
    await unchanged();
  });

  it('register_child_table refuses an ambiguous join, naming the foreign keys', async () => {
    await db.query(
      `alter table shop.customer add column billing_address_id integer constraint customer_billing_address_id_fkey references shop.address`,
    );
    state = await registryState();
    try {
      await expectPgError(
        db.query(`select pii.register_child_table('shop.address', 'shop.customer', 'address_id', 'anonymize')`),
        '42P09',
        /several foreign keys join shop\.address and shop\.customer: customer_address_id_fkey \(shop\.address\.address_id = shop\.customer\.address_id\), customer_billing_address_id_fkey/,
      );
      await unchanged();
      await expectPgError(
        db.query(
          `select pii.register_child_table('shop.address', 'shop.customer', foreign_key => 'staff_address_id_fkey')`,
        ),
        '42704',
        /foreign key "staff_address_id_fkey" does not connect shop\.address and shop\.customer/,
      );
      await unchanged();
    } finally {
      await db.query(`alter table shop.customer drop column billing_address_id`);
    }
  });

  it('register_child_table refuses shared other than keep or erase', async () => {
    await expectPgError(
      db.query(
        `select pii.register_child_table('shop.address', 'shop.customer', on_erase => 'anonymize', shared => 'share')`,
      ),
      '22023',
      /shared must be keep or erase, not "share"/,
    );
    await unchanged();
  });

  it('register_table refuses rental as delete while payment (registered, kept) references it: payment_rental_id_fkey', async () => {
    await db.query(`select pii.register_table('shop.payment', 'customer_id', 'anonymize')`);
    state = await registryState();
    try {
      await expectPgError(
        db.query(`select pii.register_table('shop.rental', 'customer_id', 'delete')`),
        '55000',
        /erasure could not run: deleting rows of shop\.rental violates foreign key payment_rental_id_fkey: shop\.payment rows that erasure keeps still reference them/,
      );
      await unchanged();
    } finally {
      await db.query(`select pii.unregister_table('shop.payment')`);
    }
  });

  it('register_table warns when a table not registered yet (payment) references the rows it deletes', async () => {
    const client = await db.pool.connect();
    const warnings: string[] = [];
    client.on('notice', (n) => warnings.push(`${n.severity}: ${n.message}`));
    try {
      await client.query(`select pii.register_table('shop.rental', 'customer_id', 'delete')`);
    } finally {
      client.release();
    }
    expect(warnings).toContain(
      'WARNING: erasure cannot run until this is fixed: deleting rows of shop.rental violates foreign key payment_rental_id_fkey: shop.payment rows of this unregistered table still reference them',
    );
    await db.query(`select pii.unregister_table('shop.rental')`);
  });

  it('register_child_table refuses deleting addresses the erased customer row still references: customer_address_id_fkey', async () => {
    await expectPgError(
      db.query(`select pii.register_child_table('shop.address', 'shop.customer', on_erase => 'delete')`),
      '55000',
      /deleting rows of shop\.address violates foreign key customer_address_id_fkey: shop\.customer rows that erasure keeps still reference them/,
    );
    await unchanged();
  });

  it('register_child_table refuses a table under a referenced table', async () => {
    await db.query(`select pii.register_child_table('shop.address', 'shop.customer', on_erase => 'anonymize')`);
    await db.query(
      `create table shop.address_note (id serial primary key, address_id integer not null references shop.address, note text)`,
    );
    state = await registryState();
    await expectPgError(
      db.query(`select pii.register_child_table('shop.address_note', 'shop.address', 'address_id')`),
      '0A000',
      /cannot register shop\.address_note under shop\.address/,
    );
    const hint = await db
      .query(`select pii.register_child_table('shop.address_note', 'shop.address', 'address_id')`)
      .catch((e: { hint?: string }) => e.hint);
    expect(hint).toMatch(
      /Register shop\.address_note by its own foreign key to a registered table that references the subject/,
    );
    await unchanged();
  });
});

describe('rental shop: plans that cannot run', () => {
  beforeAll(async () => {
    db = await createTestDatabase('rental_shop_plans');
    await loadRentalShop(db);
    await loadFixture(db, 'rentalShop_register.sql');
  });
  afterAll(() => db.drop());

  it('lint names a delete whose referencing table is no longer registered, by constraint', async () => {
    await db.query(`select pii.unregister_table('shop.payment')`);
    onTestFinished(() => db.query(`select pii.register_table('shop.payment', 'customer_id', 'delete')`).then(() => {}));
    const { rows } = await db.query(
      `select severity, table_name, problem, hint from pii.lint() where problem ~ 'violates'`,
    );
    expect(rows).toEqual([
      {
        severity: 'error',
        table_name: 'shop.rental',
        problem:
          'deleting rows of shop.rental violates foreign key payment_rental_id_fkey: shop.payment rows of this unregistered table still reference them',
        hint: 'Register shop.payment with on_erase => delete, or alter payment_rental_id_fkey to ON DELETE CASCADE / SET NULL, or register shop.rental with on_erase => anonymize.',
      },
      {
        severity: 'warning',
        table_name: 'shop.customer',
        problem:
          'with mode => delete: deleting rows of shop.customer violates foreign key payment_customer_id_fkey: shop.payment rows of this unregistered table still reference them',
        hint: 'Register shop.payment with on_erase => delete, or alter payment_customer_id_fkey to ON DELETE CASCADE / SET NULL, or erase with mode => erase.',
      },
    ]);
    // Erasure refuses before changing anything.
    const before = await shopChecksums(db);
    await expectPgError(db.query(`select * from pii.erase_subjects(array['1'])`), '55000', /payment_rental_id_fkey/);
    expect(await shopChecksums(db)).toEqual(before);
  });

  it('a foreign-key cycle among registered tables: the plan follows the registered joins, lint and erasure name the cycle', async () => {
    // customer.first_rental_id -> rental and rental.customer_id -> customer: no order satisfies both.
    await db.query(`alter table shop.customer add column first_rental_id integer
                      constraint customer_first_rental_id_fkey references shop.rental (rental_id);
                    update shop.customer c set first_rental_id = (select min(r.rental_id) from shop.rental r where r.customer_id = c.customer_id);
                    select pii.register_column('shop.customer', 'first_rental_id', 'null');`);
    onTestFinished(() =>
      db
        .query(
          `select pii.unregister_column('shop.customer', 'first_rental_id');
                                   alter table shop.customer drop column first_rental_id`,
        )
        .then(() => {}),
    );
    const plan = async (mode: string) =>
      (await db.query(`select table_name from pii_internal.erase_plan($1)`, [mode])).rows.map((r) => r.table_name);
    expect(await plan('delete')).toEqual(['shop.payment', 'shop.rental', 'shop.customer', 'shop.address']);
    expect(await plan('erase')).toEqual(['shop.payment', 'shop.rental', 'shop.customer', 'shop.address']);
    const cycle =
      'foreign keys between registered tables form a cycle: customer_first_rental_id_fkey (shop.customer -> shop.rental), rental_customer_id_fkey (shop.rental -> shop.customer); the plan follows the registered joins';
    const { rows } = await db.query(
      `select severity, table_name, problem, hint from pii.lint() where problem ~ 'cycle'`,
    );
    expect(rows).toEqual([
      {
        severity: 'error',
        table_name: 'shop.rental',
        problem: `deleting rows of shop.rental violates foreign key customer_first_rental_id_fkey: shop.customer rows, erased after them, still reference them (${cycle})`,
        hint: 'Alter customer_first_rental_id_fkey to ON DELETE CASCADE / SET NULL or DEFERRABLE INITIALLY DEFERRED, or register shop.rental with on_erase => anonymize.',
      },
    ]);
    const before = await shopChecksums(db);
    for (const mode of ['erase', 'delete'])
      await expectPgError(
        db.query(`select * from pii.erase_subjects(array['5'], mode => $1)`, [mode]),
        '55000',
        /customer_first_rental_id_fkey: shop\.customer rows, erased after them, still reference them \(foreign keys between registered tables form a cycle/,
      );
    expect(await shopChecksums(db)).toEqual(before);
    // ON DELETE SET NULL: the cycle can run; lint is silent and customer 5 is erased.
    await db.query(`alter table shop.customer drop constraint customer_first_rental_id_fkey,
                      add constraint customer_first_rental_id_fkey foreign key (first_rental_id) references shop.rental on delete set null`);
    expect((await db.query(`select * from pii.lint() where problem ~ 'cycle'`)).rows).toEqual([]);
    await inRolledBackTransaction(async (q) => {
      const { rows: out } = await q(
        `select table_name, rows_affected::int from pii.erase_subjects(array['5'], mode => 'delete')`,
      );
      expect(out).toEqual([
        { table_name: 'shop.payment', rows_affected: 3 },
        { table_name: 'shop.rental', rows_affected: 3 },
        { table_name: 'shop.customer', rows_affected: 1 },
        { table_name: 'shop.address', rows_affected: 1 },
      ]);
    });
  });

  it('lint warns of a plan only mode delete cannot run (an unregistered table references customers)', async () => {
    await db.query(
      `create table shop.review (id serial primary key, customer_id integer not null constraint review_customer_id_fkey references shop.customer, body text)`,
    );
    const { rows } = await db.query(`select severity, table_name, problem from pii.lint() where problem ~ 'violates'`);
    expect(rows).toEqual([
      {
        severity: 'warning',
        table_name: 'shop.customer',
        problem:
          'with mode => delete: deleting rows of shop.customer violates foreign key review_customer_id_fkey: shop.review rows of this unregistered table still reference them',
      },
    ]);
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['1'], mode => 'delete')`),
      '55000',
      /erasure \(mode delete\) cannot run: .*review_customer_id_fkey/,
    );
    await db.query(`drop table shop.review`);
  });

  it('lint names an unindexed foreign key into a table whose rows may be shared', async () => {
    await db.query(
      `create table shop.supplier (id serial primary key, address_id integer constraint supplier_address_id_fkey references shop.address)`,
    );
    const { rows } = await db.query(
      `select severity, table_name, column_name, problem from pii.lint() where problem ~ 'supplier_address_id_fkey'`,
    );
    expect(rows).toEqual([
      {
        severity: 'warning',
        table_name: 'shop.supplier',
        column_name: 'address_id',
        problem:
          'no index leads with the columns of foreign key supplier_address_id_fkey into shop.address: erasure checks whether its rows are shared by scanning this table',
      },
    ]);
    await db.query(`drop table shop.supplier`);
  });

  it('addresses deleted in mode erase once the customer row moves to a placeholder (set:<id>)', async () => {
    await db.query(
      `insert into shop.address (address_id, address, district, city, phone) values (1000, 'erased', '', '', '')`,
    );
    await db.query(`select pii.register_column('shop.customer', 'address_id', 'set:1000', 'clear', 'link')`);
    await db.query(`select pii.register_child_table('shop.address', 'shop.customer', on_erase => 'delete')`);
    const before = await shopChecksums(db);
    const { rows } = await db.query(
      `select table_name, rows_affected, shared_kept from pii.erase_subjects(array['4', '12'])`,
    );
    expect(rows).toContainEqual({ table_name: 'shop.address', rows_affected: '1', shared_kept: '1' });
    const after = await shopChecksums(db);
    expect(changedIds(before.address, after.address)).toEqual([4]);
    expect((await db.query(`select address_id from shop.customer where customer_id in (4, 12)`)).rows).toEqual([
      { address_id: 1000 },
      { address_id: 1000 },
    ]);
    // Again: the placeholder is never deleted, though only erased customers reference it.
    await db.query(`select * from pii.erase_subjects(array['4', '12'])`);
    expect((await db.query(`select count(*)::int as n from shop.address where address_id = 1000`)).rows[0].n).toBe(1);
  });
});
