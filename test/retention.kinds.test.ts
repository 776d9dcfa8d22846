// Retention and erasure by query on an install with several subject kinds (the rental shop's
// customers and staff, issue 12): a policy or query names its kind, whose key type the query
// must return and whose tables the preview and the dry run count; without one, 22023 lists
// the kinds. Nothing changes on a preview or a dry run (checksums).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

/** One checksum over the shop's tables and Lethe's requests and tombstones. */
async function checksum(): Promise<string> {
  const { rows } = await db.query(`
    select md5(string_agg(x.t, '|' order by x.t)) as sum from (
      select 'c' || t::text as t from shop.customer t union all select 's' || t::text from shop.staff t
      union all select 'r' || t::text from shop.rental t union all select 'p' || t::text from shop.payment t
      union all select 'q' || id::text from pii.requests union all select 't' || encode(subject_hash, 'hex') from pii_internal.tombstones) x`);
  return rows[0].sum;
}

const staffQuery = 'select s.staff_id from shop.staff s where s.staff_id > 2';
const customerQuery = 'select c.customer_id from shop.customer c where c.customer_id <= 2';

beforeAll(async () => {
  db = await createTestDatabase('retention_kinds');
  await loadFixture(db, 'rentalShop.sql', 'rentalShop_kinds.sql');
});
afterAll(() => db?.drop());

describe('retention policies of a kind', () => {
  it('needs the kind where the install has several (22023 listing them); nothing is stored', async () => {
    await expectPgError(
      db.query(`select pii.set_retention_policy('staff-left', $1, 10)`, [staffQuery]),
      '22023',
      /several subject kinds \("customer", "staff"\)/,
    );
    expect((await db.query(`select count(*)::int as n from pii.retention_policy_versions`)).rows[0].n).toBe(0);
  });

  it("checks the query against the kind's key type", async () => {
    await expectPgError(
      db.query(`select pii.set_retention_policy('staff-left', $1, 10, kind => 'staff')`, [
        'select s.username from shop.staff s',
      ]),
      '42804',
      /subject_query returns text but the subject key is integer/,
    );
  });

  it("previews the kind's candidates and counts only its tables, changing nothing", async () => {
    await db.query(`select pii.set_retention_policy('staff-left', $1, 10, kind => 'staff')`, [staffQuery]);
    const before = await checksum();
    const { rows } = await db.query(
      `select version, candidates, held, rows_to_change from pii.preview_retention('staff-left')`,
    );
    expect(rows).toEqual([{ version: 1, candidates: '2', held: '0', rows_to_change: { 'shop.staff': 2 } }]);
    expect(await checksum()).toBe(before);
  });

  it('enforces into one request of that kind', async () => {
    await db.query(`select pii.approve_retention('staff-left', 1)`);
    const { rows } = await db.query(`select outcome, candidates, request_id from pii.enforce_retention('staff-left')`);
    expect(rows[0]).toMatchObject({ outcome: 'requested', candidates: '2' });
    const request = await db.query(`select kind, total from pii.requests where id = $1`, [rows[0].request_id]);
    expect(request.rows).toEqual([{ kind: 'staff', total: '2' }]);
  });
});

describe('pii.request_erasure_from_query with a kind', () => {
  it('dry run: the count and the rows of that kind’s tables, nothing changed', async () => {
    const before = await checksum();
    const customers = await db.query(
      `select subjects, rows_to_change from pii.request_erasure_from_query($1, 10, kind => 'customer', dry_run => true)`,
      [customerQuery],
    );
    expect(customers.rows).toEqual([
      { subjects: '2', rows_to_change: { 'shop.customer': 2, 'shop.rental': 6, 'shop.payment': 6 } },
    ]);
    const staff = await db.query(
      `select subjects, rows_to_change from pii.request_erasure_from_query($1, 10, kind => 'staff', dry_run => true)`,
      ['select s.staff_id from shop.staff s where s.staff_id <= 2'],
    );
    expect(staff.rows).toEqual([{ subjects: '2', rows_to_change: { 'shop.staff': 2 } }]);
    expect(await checksum()).toBe(before);
  });

  it('without a kind: 22023 listing the kinds, nothing requested', async () => {
    const before = await checksum();
    for (const dryRun of [true, false]) {
      await expectPgError(
        db.query(`select * from pii.request_erasure_from_query($1, 10, dry_run => $2)`, [customerQuery, dryRun]),
        '22023',
        /several subject kinds \("customer", "staff"\)/,
      );
    }
    expect(await checksum()).toBe(before);
  });
});

describe('a policy and a hold made while the install had one kind', () => {
  let one: TestDatabase;
  beforeAll(async () => {
    one = await createTestDatabase('retention_one_kind');
    await loadFixture(one, 'rentalShop.sql');
    await one.query(`
      select pii.register_subject_table('shop.customer', 'customer_id', kind => 'customer');
      select pii.register_column('shop.customer', 'email', 'null');`);
  });
  afterAll(() => one?.drop());

  it('keep meaning that kind once a second kind is registered', async () => {
    await one.query(`select pii.set_retention_policy('old-customers', $1, 10)`, [customerQuery]);
    await one.query(`select pii.place_hold(array['1'], 'invoices', current_date + 400)`);
    await one.query(`
      select pii.register_subject_table('shop.staff', 'staff_id', kind => 'staff');
      select pii.register_column('shop.staff', 'email', 'null');`);
    expect((await one.query(`select kind from pii.retention_policies`)).rows).toEqual([{ kind: 'customer' }]);
    expect((await one.query(`select kind from pii.holds`)).rows).toEqual([{ kind: 'customer' }]);
    const { rows } = await one.query(
      `select candidates, held, rows_to_change from pii.preview_retention('old-customers')`,
    );
    expect(rows).toEqual([{ candidates: '1', held: '1', rows_to_change: { 'shop.customer': 1 } }]);
  });
});
