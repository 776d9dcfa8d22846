// pii.restore_check with several subject kinds (issue 12): the rental shop with customers and
// staff, both kinds erased (with identifiers), then a backup from before the erasures is
// restored. The ledger's entries re-erase the subjects of every kind that are back: one
// request per kind and mode, each erasing exactly those subjects of its kind, and the guards
// refuse them (by key and by identifier) from the moment restore_check returns.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { type Backup, backupOf } from './helpers/restoreBackup.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let live: TestDatabase;
let backup: Backup;
let restored: pg.Pool;
let report: Record<string, unknown>;

const customers = ['3', '4', '5'];
const staff = ['3', '4'];
const deletedCustomers = ['6'];

/** md5 of every row of the shop's tables, by table and key. */
async function checksums(pool: pg.Pool): Promise<Map<string, string>> {
  const { rows } = await pool.query(`
    select 'customer:' || customer_id as k, md5(t::text) as h from shop.customer t
    union all select 'staff:' || staff_id, md5(t::text) from shop.staff t
    union all select 'rental:' || rental_id, md5(t::text) from shop.rental t
    union all select 'payment:' || payment_id, md5(t::text) from shop.payment t`);
  return new Map(rows.map((r) => [r.k as string, r.h as string]));
}

beforeAll(async () => {
  live = await createTestDatabase('restore_kinds');
  await loadFixture(live, 'rentalShop.sql', 'rentalShop_kinds.sql');
  const major = Math.floor(Number((await live.query('show server_version_num')).rows[0].server_version_num) / 10000);
  backup = await backupOf(live.url, major, 'before');
  await backup.take();

  await live.query(`select * from pii.erase_subjects($1::text[], kind => 'customer')`, [customers]);
  await live.query(`select * from pii.erase_subjects($1::text[], kind => 'staff')`, [staff]);
  await live.query(`select * from pii.erase_subjects($1::text[], mode => 'delete', kind => 'customer')`, [
    deletedCustomers,
  ]);
  const entries = (await live.query(`select jsonb_agg(entry order by seq) as e from pii.ledger_entries_after(0)`))
    .rows[0].e;

  restored = new pg.Pool({ connectionString: await backup.restore(`${live.name}_restored`), max: 2 });
  restored.on('error', () => {});
  report = (await restored.query(`select * from pii.restore_check($1::jsonb)`, [JSON.stringify(entries)])).rows[0];
});
afterAll(async () => {
  await restored?.end();
  await live?.drop();
  await backup?.cleanup();
});

describe('pii.restore_check with several kinds', () => {
  it('finds the returned subjects of every kind: one request per kind and mode, each with its own keys', async () => {
    expect(report).toMatchObject({ subjects: '6', replayed: '6', not_present: '0', tombstones_written: '6' });
    const { rows } = await restored.query(`
      select r.kind, r.mode, r.total::int, r.source from pii.requests r order by r.kind, r.mode`);
    expect(rows).toEqual([
      { kind: 'customer', mode: 'delete', total: 1, source: 'restore-check' },
      { kind: 'customer', mode: 'erase', total: 3, source: 'restore-check' },
      { kind: 'staff', mode: 'erase', total: 2, source: 'restore-check' },
    ]);
    expect(((report.request_ids as string[]) ?? []).length).toBe(3);
  });

  it('the guards refuse the returned subjects of both kinds, by key and by identifier, before the requests run', async () => {
    const erased = await restored.query(
      `
      select (select count(*) from pii.was_erased(k, kind => 'customer') w where w.flagged_at is not null) as c from unnest($1::text[]) k`,
      [[...customers, ...deletedCustomers]],
    );
    expect(erased.rows.map((r) => Number(r.c))).toEqual([1, 1, 1, 1]);
    const staffErased = await restored.query(
      `select (select count(*) from pii.was_erased(k, kind => 'staff') w where w.flagged_at is not null) as c from unnest($1::text[]) k`,
      [staff],
    );
    expect(staffErased.rows.map((r) => Number(r.c))).toEqual([1, 1]);
    // Staff 3 comes back under a new serial id with the same username: scrubbed.
    await restored.query(`
      insert into shop.staff (first_name, last_name, email, username, address_id, store_id)
      values ('Ana', 'Lopez', 'someone@else.example', ' ANA ', 41, 1)`);
    const back = await restored.query(
      `select first_name, username from shop.staff where email is null and first_name = 'erased' and staff_id > 4`,
    );
    expect(back.rowCount).toBe(1);
  });

  it('processing the requests erases exactly those subjects of each kind, and a second run replays nothing', async () => {
    const before = await checksums(restored);
    const erasedCustomers = [...customers, ...deletedCustomers];
    const { rows: history } = await restored.query(
      `select 'rental:' || rental_id as k from shop.rental where customer_id = any ($1::int[])
       union all select 'payment:' || payment_id from shop.payment where customer_id = any ($1::int[])`,
      [erasedCustomers],
    );
    const ids = (await restored.query(`select id from pii.requests order by kind, mode`)).rows.map(
      (r) => r.id as string,
    );
    for (const id of ids) {
      while ((await restored.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
      await restored.query('select pii.finish_request($1)', [id]);
    }
    expect((await restored.query(`select distinct status from pii.requests`)).rows).toEqual([{ status: 'done' }]);
    const after = await checksums(restored);
    const changed = [...before.keys()].filter((k) => before.get(k) !== after.get(k)).sort();
    expect(changed).toEqual(
      [
        ...erasedCustomers.map((k) => `customer:${k}`),
        ...staff.map((k) => `staff:${k}`),
        ...history.map((r) => r.k as string),
      ].sort(),
    );
    const staffLeft = await restored.query(
      `select count(*)::int as n from shop.staff where staff_id = any ($1::int[]) and first_name <> 'erased'`,
      [staff],
    );
    expect(staffLeft.rows[0].n).toBe(0);
    expect((await restored.query(`select count(*)::int as n from shop.customer where customer_id = 6`)).rows[0].n).toBe(
      0,
    );

    const entries = (await live.query(`select jsonb_agg(entry order by seq) as e from pii.ledger_entries_after(0)`))
      .rows[0].e;
    const again = (await restored.query(`select * from pii.restore_check($1::jsonb)`, [JSON.stringify(entries)]))
      .rows[0];
    expect(again).toMatchObject({ replayed: '0', already_erased: '6', request_ids: [] });
  });
});
