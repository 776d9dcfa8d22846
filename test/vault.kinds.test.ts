// The vault on an install with several subject kinds (the rental shop's customers and staff,
// issue 12): tokenize names the subjects' kind (subject_kind) where there are several; each
// kind's subjects have their own data keys, so customer 1 and staff member 1 are two
// subjects, and erasing the staff member shreds only the staff entries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLethe } from '../src/api/index.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

const vaultRows = async () =>
  (
    await db.query(
      `select (select count(*)::int from pii_internal.vault_entries) as entries, (select count(*)::int from pii_internal.vault_keys) as keys`,
    )
  ).rows[0];

async function detokenize(tokens: string[]) {
  return (await db.query(`select token, value, status from pii.detokenize($1::text[], 'test')`, [tokens])).rows;
}

beforeAll(async () => {
  db = await createTestDatabase('vault_kinds');
  await loadFixture(db, 'rentalShop.sql', 'rentalShop_kinds.sql');
});
afterAll(() => db?.drop());

describe('pii.tokenize on an install with several subject kinds', () => {
  it('needs the subject kind (22023 listing the kinds) and refuses an unknown one; nothing is stored', async () => {
    await expectPgError(
      db.query(`select pii.tokenize('1', 'email', 'customer1@mail.example')`),
      '22023',
      /several subject kinds \("customer", "staff"\): name one/,
    );
    await expectPgError(
      db.query(`select * from pii.tokenize_many(array['1'], array['email'], array['mike@staff.example'])`),
      '22023',
      /several subject kinds/,
    );
    await expectPgError(
      db.query(`select pii.tokenize('1', 'email', 'x@example.com', subject_kind => 'store')`),
      '22023',
      /unknown subject kind "store": this install has kinds "customer", "staff"/,
    );
    expect(await vaultRows()).toEqual({ entries: 0, keys: 0 });
  });

  it('keeps customer 1 and staff member 1 apart: two subjects, two data keys; erasing the staff member shreds only theirs', async () => {
    const { rows } = await db.query(`
      select pii.tokenize('1', 'email', 'customer1@mail.example', subject_kind => 'customer') as customer,
             pii.tokenize('1', 'email', 'mike@staff.example', subject_kind => 'staff') as staff`);
    const { customer, staff } = rows[0] as { customer: string; staff: string };
    // Through the TypeScript API as well (tokenize_many with subject_kind).
    const lethe = createLethe({ connectionString: db.url });
    let staffPhone: string | null | undefined;
    try {
      [staffPhone] = await lethe.tokenize([{ subjectKey: '1', kind: 'phone', value: '+1 555 0101' }], {
        subjectKind: 'staff',
      });
    } finally {
      await lethe.close();
    }
    expect(staffPhone).toMatch(/^tok_[0-9a-f]{32}$/);
    expect(await vaultRows()).toEqual({ entries: 3, keys: 2 });
    const subjects = await db.query(
      `select count(distinct subject_hash)::int as n from pii_internal.vault_entries where token = any ($1::text[])`,
      [[customer, staff]],
    );
    expect(subjects.rows[0].n).toBe(2);

    await db.query(`select * from pii.erase_subjects(array['1'], kind => 'staff')`);
    expect(await detokenize([customer, staff, staffPhone!])).toEqual([
      { token: customer, value: 'customer1@mail.example', status: 'ok' },
      { token: staff, value: null, status: 'erased' },
      { token: staffPhone, value: null, status: 'erased' },
    ]);
    expect(await vaultRows()).toEqual({ entries: 1, keys: 1 });
    expect((await db.query(`select * from pii.verify_erasure_keys(array['1'], kind => 'staff')`)).rows).toEqual([]);
  });

  it("tombstones are per kind: an erased staff member gets no token, customer 1's value still tokenizes", async () => {
    const { rows } = await db.query(`
      select pii.tokenize('1', 'email', 'again@staff.example', subject_kind => 'staff') as staff,
             pii.tokenize('1', 'phone', '+1 555 200-0001', subject_kind => 'customer') as customer`);
    expect(rows[0].staff).toBeNull();
    expect(rows[0].customer).toMatch(/^tok_/);
  });

  it("verify_erasure_keys of a staff member reports that kind's vault entry and data key left behind", async () => {
    await db.query(`select pii.tokenize('2', 'email', 'jon@staff.example', subject_kind => 'staff')`);
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`alter table pii_internal.tombstones disable trigger vault_shred_on_erase_insert,
                          disable trigger vault_shred_on_erase_update`);
      await client.query(`select * from pii.erase_subjects(array['2'], kind => 'staff')`);
      const { rows } = await client.query(
        `select table_name, detail from pii.verify_erasure_keys(array['2'], kind => 'staff') where table_name like 'pii_internal.vault%' order by 1`,
      );
      expect(rows).toEqual([
        { table_name: 'pii_internal.vault_entries', detail: 'vault entry of an erased subject not shredded' },
        { table_name: 'pii_internal.vault_keys', detail: 'data key of an erased subject not destroyed' },
      ]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});
