// pii.request_items_page: keyset pages of a request's items; each filter walks its own index.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let id: string;

beforeAll(async () => {
  db = await createTestDatabase('request_items_page');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  id = (
    await db.query(
      `select pii.request_erasure(array['1', '2', '3'] || array(select (100000 + i)::text from generate_series(1, 3000) i)) as id`,
    )
  ).rows[0].id;
  await db.query('analyze pii_internal.request_items');
});
afterAll(() => db?.drop());

describe('pii.request_items_page', () => {
  it('pages after the last hash, in hash order, as many as asked', async () => {
    const first = (await db.query(`select subject_hash from pii.request_items_page($1, page_size => 2)`, [id])).rows;
    const next = (
      await db.query(`select subject_hash from pii.request_items_page($1, $2, 2)`, [id, first[1].subject_hash])
    ).rows;
    const { rows } = await db.query(
      `select encode(subject_hash, 'hex') as subject_hash from pii_internal.request_items where request_id = $1 order by subject_hash limit 4`,
      [id],
    );
    expect([...first, ...next]).toEqual(rows);
  });

  it('only_items => unmatched walks its partial index, not the other items', async () => {
    const { rows } = await db.query(
      `select count(*)::int as n from pii.request_items_page($1, only_items => 'unmatched', page_size => 1000)`,
      [id],
    );
    expect(rows[0].n).toBe(1000);
    const plan = (
      await db.query(
        `explain select subject_hash from pii_internal.request_items i
         where i.request_id = $1 and not i.matched and i.subject_hash > '\\x00'::bytea order by i.subject_hash limit 51`,
        [id],
      )
    ).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    expect(plan).toContain('request_items_unmatched_idx');
    expect(
      (await db.query(`select count(*)::int as n from pii.request_items_page($1, only_items => 'failed')`, [id]))
        .rows[0].n,
    ).toBe(0);
  });

  it('refuses a bad page size, filter or hash (22023)', async () => {
    await expectPgError(
      db.query(`select * from pii.request_items_page($1, page_size => 0)`, [id]),
      '22023',
      /page_size/,
    );
    await expectPgError(
      db.query(`select * from pii.request_items_page($1, only_items => 'done')`, [id]),
      '22023',
      /only_items/,
    );
    await expectPgError(db.query(`select * from pii.request_items_page($1, 'xyz')`, [id]), '22023', /after_hash/);
  });
});
