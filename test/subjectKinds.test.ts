// Subject kinds (issue 12): several subject tables per install (customer, staff), each a
// named kind. Erasure, requests, verification, tombstones, was_erased and allow_return take
// the kind; with one kind it may be omitted, with several it is required. Erasing one kind
// changes no row of the other. Identifier tombstones, the ledger and every Lethe table hold
// keyed hashes only.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importCsv } from '../src/csv/importCsv.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

/** md5 of every row of the shop's tables, by table and key. */
async function checksums(): Promise<Map<string, string>> {
  const { rows } = await db.query(`
    select 'customer:' || customer_id as k, md5(t::text) as h from shop.customer t
    union all select 'staff:' || staff_id, md5(t::text) from shop.staff t
    union all select 'store:' || store_id, md5(t::text) from shop.store t
    union all select 'address:' || address_id, md5(t::text) from shop.address t
    union all select 'rental:' || rental_id, md5(t::text) from shop.rental t
    union all select 'payment:' || payment_id, md5(t::text) from shop.payment t`);
  return new Map(rows.map((r) => [r.k as string, r.h as string]));
}
const changed = (a: Map<string, string>, b: Map<string, string>) =>
  [...a.keys()].filter((k) => a.get(k) !== b.get(k)).sort();
const keysOf = async (sql: string) => (await db.query(sql)).rows.map((r) => r.k as string).sort();

beforeAll(async () => {
  db = await createTestDatabase('subject_kinds');
  await loadFixture(db, 'rentalShop.sql', 'rentalShop_kinds.sql');
});
afterAll(() => db?.drop());

describe('pii.register_subject_table with kinds', () => {
  it("registers two kinds; every table belongs to its subject table's kind (by its subject column's foreign key)", async () => {
    expect((await db.query(`select kind, relid::text from pii.subject_table order by kind`)).rows).toEqual([
      { kind: 'customer', relid: 'shop.customer' },
      { kind: 'staff', relid: 'shop.staff' },
    ]);
    expect((await db.query(`select relid::text, kind from pii.tables order by 1`)).rows).toEqual([
      { relid: 'shop.customer', kind: 'customer' },
      { relid: 'shop.payment', kind: 'customer' },
      { relid: 'shop.rental', kind: 'customer' },
      { relid: 'shop.staff', kind: 'staff' },
    ]);
  });

  it('pii.registered_tables shows the kind of every registered table', async () => {
    expect((await db.query(`select table_name, link, kind from pii.registered_tables order by 1`)).rows).toEqual([
      { table_name: 'shop.customer', link: 'subject', kind: 'customer' },
      { table_name: 'shop.payment', link: 'direct', kind: 'customer' },
      { table_name: 'shop.rental', link: 'direct', kind: 'customer' },
      { table_name: 'shop.staff', link: 'subject', kind: 'staff' },
    ]);
  });

  it('refuses a kind that is taken, a table of one kind as another subject, and a table with no way to its kind', async () => {
    const state = async () =>
      (await db.query(`select (select count(*) from pii.tables) t, (select count(*) from pii.subject_table) s`)).rows;
    const before = await state();
    await expectPgError(
      db.query(`select pii.register_subject_table('shop.store', 'store_id', kind => 'staff')`),
      '55000',
      /subject kind "staff" is already registered with table shop\.staff/,
    );
    await expectPgError(
      db.query(`select pii.register_subject_table('shop.rental', 'rental_id', kind => 'rental')`),
      '55000',
      /table shop\.rental belongs to kind "customer"/,
    );
    await db.query(`create table shop.notes (id int primary key, who int, body text)`);
    await expectPgError(
      db.query(`select pii.register_table('shop.notes', 'who', 'delete')`),
      '22023',
      /which subject kind does shop\.notes belong to\? no foreign key from shop\.notes\.who to a subject table \(kinds "customer", "staff"\)/,
    );
    expect(await state()).toEqual(before);
  });
});

describe('a kind is required where an install has several', () => {
  it('erase_subjects, request_erasure, was_erased, allow_return, verify_erasure_keys: 22023 listing the kinds, nothing written', async () => {
    const state = async () =>
      (await db.query(`select (select count(*) from pii_internal.tombstones) t, (select count(*) from pii.requests) r`))
        .rows[0];
    const before = await state();
    const sums = await checksums();
    for (const call of [
      `select * from pii.erase_subjects(array['1'])`,
      `select pii.request_erasure(array['1'])`,
      `select * from pii.was_erased('1')`,
      `select pii.allow_return('1')`,
      `select * from pii.verify_erasure_keys(array['1'])`,
    ])
      await expectPgError(db.query(call), '22023', /this install has several subject kinds \("customer", "staff"\)/);
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['1'], kind => 'robot')`),
      '22023',
      /unknown subject kind "robot": this install has kinds "customer", "staff"/,
    );
    expect(await state()).toEqual(before);
    expect(changed(sums, await checksums())).toEqual([]);
  });
});

describe('pii.erase_subjects by kind', () => {
  it('erases customer 3: its own rows only; staff 3 and everything else unchanged', async () => {
    const before = await checksums();
    await db.query(`select * from pii.erase_subjects(array['3'], kind => 'customer')`);
    const expected = [
      'customer:3',
      ...(await keysOf(`select 'rental:' || rental_id as k from shop.rental where customer_id = 3`)),
      ...(await keysOf(`select 'payment:' || payment_id as k from shop.payment where customer_id = 3`)),
    ].sort();
    expect(changed(before, await checksums())).toEqual(expected);
    expect((await db.query(`select erased from pii.was_erased('3', kind => 'customer')`)).rows).toEqual([
      { erased: true },
    ]);
    expect((await db.query(`select erased from pii.was_erased('3', kind => 'staff')`)).rows).toEqual([
      { erased: false },
    ]);
    expect((await db.query(`select * from pii.verify_erasure_keys(array['3'], kind => 'customer')`)).rows).toEqual([]);
  });

  it('erases staff 3 independently: only the staff row changes; two tombstones with different hashes and kinds', async () => {
    const before = await checksums();
    await db.query(`select * from pii.erase_subjects(array['3'], kind => 'staff')`);
    expect(changed(before, await checksums())).toEqual(['staff:3']);
    const { rows } = await db.query(
      `select kind, encode(subject_hash, 'hex') as h from pii_internal.tombstones order by kind`,
    );
    expect(rows.map((r) => r.kind)).toEqual(['customer', 'staff']);
    expect(rows[0].h).not.toBe(rows[1].h);
    expect((await db.query(`select * from pii.verify_erasure_keys(array['3'], kind => 'staff')`)).rows).toEqual([]);
    expect(
      (await db.query(`select kind, identifier from pii_internal.identifier_tombstones order by 1, 2`)).rows,
    ).toEqual([
      { kind: 'customer', identifier: 'email' },
      { kind: 'customer', identifier: 'phone' },
      { kind: 'staff', identifier: 'email' },
      { kind: 'staff', identifier: 'username' },
    ]);
  });

  it('verify_erasure_keys reports data that came back past the guard', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select pii.set_guard('shop.staff', 'off')`);
      await client.query(`update shop.staff set email = 'back@staff.example' where staff_id = 3`);
      const { rows } = await client.query(
        `select table_name, column_name, detail from pii.verify_erasure_keys(array['3'], kind => 'staff')`,
      );
      expect(rows).toEqual([
        { table_name: 'shop.staff', column_name: 'email', detail: 'not erased (erase strategy null)' },
      ]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('pii.request_erasure by kind', () => {
  it('a staff request erases staff only; a customer request counts erased subjects, never unmatched keys', async () => {
    const before = await checksums();
    const staffId = (await db.query(`select pii.request_erasure(array['4'], kind => 'staff') as id`)).rows[0].id;
    const customerId = (await db.query(`select pii.request_erasure(array['6', '7', '9999'], kind => 'customer') as id`))
      .rows[0].id;
    for (const id of [staffId, customerId]) {
      while ((await db.query(`select pii.process_request_chunk($1, 2) as n`, [id])).rows[0].n > 0);
      expect((await db.query(`select pii.finish_request($1) as s`, [id])).rows[0].s).toBe('done');
      expect((await db.query(`select * from pii.verify_erasure($1)`, [id])).rows).toEqual([]);
    }
    expect((await db.query(`select kind from pii.request_status($1)`, [staffId])).rows).toEqual([{ kind: 'staff' }]);
    expect(
      (
        await db.query(`select kind, total, matched, unmatched, erased, progress from pii.request_status($1)`, [
          customerId,
        ])
      ).rows,
    ).toEqual([{ kind: 'customer', total: '3', matched: '2', unmatched: '1', erased: '2', progress: '1.0000' }]);
    const rentals = await keysOf(`select 'rental:' || rental_id as k from shop.rental where customer_id in (6, 7)`);
    const payments = await keysOf(`select 'payment:' || payment_id as k from shop.payment where customer_id in (6, 7)`);
    expect(changed(before, await checksums())).toEqual(
      ['customer:6', 'customer:7', ...rentals, ...payments, 'staff:4'].sort(),
    );
  });
});

describe('CSV import with kinds', () => {
  const csv = (text: string) => Readable.from([text]);
  it('takes the kind from a kind column or from the kind option; refuses two kinds in one file and no kind', async () => {
    const fromColumn = await importCsv(db.pool, csv('customer_id,kind\n8,customer\n9,customer\n'));
    expect((await db.query(`select kind, total from pii.requests where id = $1`, [fromColumn.requestId])).rows).toEqual(
      [{ kind: 'customer', total: '2' }],
    );
    const fromOption = await importCsv(db.pool, csv('subject_key\n1\n'), { kind: 'staff' });
    expect((await db.query(`select kind from pii.requests where id = $1`, [fromOption.requestId])).rows).toEqual([
      { kind: 'staff' },
    ]);
    const before = (await db.query(`select count(*)::int as n from pii.requests`)).rows[0].n;
    await expect(importCsv(db.pool, csv('customer_id,kind\n8,customer\n2,staff\n'))).rejects.toMatchObject({
      code: '22023',
      message: expect.stringMatching(/rows of 2 kinds \(customer, staff\); a request erases one kind/),
    });
    await expect(importCsv(db.pool, csv('customer_id\n8\n'))).rejects.toMatchObject({
      code: '22023',
      message: expect.stringMatching(/several subject kinds/),
    });
    expect((await db.query(`select count(*)::int as n from pii.requests`)).rows[0].n).toBe(before);
  });
});

describe('identifier tombstones in the erasure ledger', () => {
  it('ledger entries carry the kind and the identifier hashes; restore_check re-applies identifier tombstones', async () => {
    const { rows } = await db.query(
      `select kind, cardinality(identifier_hashes) as n from pii.erasure_ledger where mode = 'erase' order by seq limit 2`,
    );
    expect(rows).toEqual([
      { kind: 'customer', n: 2 },
      { kind: 'staff', n: 2 },
    ]);
    const entries = (
      await db.query(`select pii_internal.ledger_entry_json(l) as e from pii.erasure_ledger l order by seq`)
    ).rows.map((r) => r.e);
    const count = async () =>
      Number((await db.query(`select count(*) as n from pii_internal.identifier_tombstones`)).rows[0].n);
    const all = await count();
    // A backup taken before the identifiers were tombstoned.
    await db.query(`delete from pii_internal.identifier_tombstones`);
    await db.query(`select * from pii.restore_check($1::jsonb)`, [JSON.stringify(entries)]);
    expect(await count()).toBe(all);
    // And they work: customer 3's email under a new id is scrubbed.
    const id = Number((await db.query(`select nextval('shop.customer_customer_id_seq') as n`)).rows[0].n);
    await db.query(
      `insert into shop.customer (customer_id, store_id, first_name, last_name, email, address_id) values ($1, 1, 'A', 'B', 'customer3@mail.example', 4)`,
      [id],
    );
    expect((await db.query(`select email from shop.customer where customer_id = $1`, [id])).rows).toEqual([
      { email: null },
    ]);
  });
});

describe('no raw identifier in Lethe', () => {
  it('no table of schemas pii and pii_internal holds an erased email, phone or username as plaintext', async () => {
    const needles = [
      'customer3@mail.example',
      'customer6@mail.example',
      'ana@staff.example',
      'li@staff.example',
      '5552000003',
      '200-0003',
    ];
    const { rows: tables } = await db.query(
      `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname in ('pii', 'pii_internal') and c.relkind in ('r', 'p')`,
    );
    expect(tables.length).toBeGreaterThan(20);
    const hits: string[] = [];
    for (const { t } of tables) {
      const { rows } = await db.query(`select count(*)::int as n from ${t} x where x::text ilike any ($1::text[])`, [
        needles.map((s) => `%${s}%`),
      ]);
      if (rows[0].n > 0) hits.push(t);
    }
    expect(hits).toEqual([]);
    // The search works: the application still holds a customer's email that was not erased.
    expect(
      (await db.query(`select count(*)::int as n from shop.customer x where x::text ilike '%customer4@mail.example%'`))
        .rows[0].n,
    ).toBe(1);
  });
});

describe('the erasure ledger with a scoped and an unscoped kind', () => {
  it("an entry's scoped flag is its own kind's subject table's, in one erasure and across calls", async () => {
    const mixed = await createTestDatabase('subject_kinds_scoped');
    try {
      await loadFixture(mixed, 'rentalShop.sql');
      await mixed.query(`select pii.register_subject_table('shop.customer', 'customer_id', kind => 'customer');
                         select pii.register_column('shop.customer', 'email', 'null');
                         select pii.register_subject_table('shop.staff', 'staff_id', kind => 'staff', scope_column => 'store_id');
                         select pii.register_column('shop.staff', 'email', 'null');`);
      await mixed.query(`select * from pii.erase_subjects(array['3'], kind => 'customer')`);
      await mixed.query(`select * from pii.erase_subjects(array['3'], array['1'], kind => 'staff')`);
      const rid = (
        await mixed.query(`select pii.request_erasure(array['2'], scopes => array['2'], kind => 'staff') as id`)
      ).rows[0].id;
      while ((await mixed.query(`select pii.process_request_chunk($1) as n`, [rid])).rows[0].n > 0);
      expect(
        (
          await mixed.query(
            `select kind, scoped, request_id is not null as by_request from pii.erasure_ledger order by seq`,
          )
        ).rows,
      ).toEqual([
        { kind: 'customer', scoped: false, by_request: false },
        { kind: 'staff', scoped: true, by_request: false },
        { kind: 'staff', scoped: true, by_request: true },
      ]);
      expect((await mixed.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    } finally {
      await mixed.drop();
    }
  });
});

describe('one kind', () => {
  it('the kind may be omitted: erase_subjects, was_erased, allow_return, verify_erasure_keys without it', async () => {
    const one = await createTestDatabase('subject_kinds_one');
    try {
      await one.query(`create table shop_one (id int primary key, email text);
                       insert into shop_one values (1, 'one@mail.example'), (2, 'two@mail.example');
                       select pii.register_subject_table('shop_one', 'id');
                       select pii.register_column('shop_one', 'email', 'null');
                       select pii.register_identifier('shop_one', 'email', 'email');`);
      expect((await one.query(`select kind from pii.subject_table`)).rows).toEqual([{ kind: 'shop_one' }]);
      await one.query(`select * from pii.erase_subjects(array['1'])`);
      expect((await one.query(`select erased from pii.was_erased('1')`)).rows).toEqual([{ erased: true }]);
      expect((await one.query(`select * from pii.verify_erasure_keys(array['1'])`)).rows).toEqual([]);
      await one.query(`insert into shop_one values (3, 'ONE@mail.example')`);
      expect((await one.query(`select email from shop_one where id = 3`)).rows).toEqual([{ email: null }]);
      expect((await one.query(`select pii.allow_return('1') as ok`)).rows).toEqual([{ ok: true }]);
      expect((await one.query(`select count(*)::int as n from pii_internal.identifier_tombstones`)).rows).toEqual([
        { n: 0 },
      ]);
    } finally {
      await one.drop();
    }
  });
});
