// Legal holds in the erasure engine (F29): erasing a held subject deletes everything not
// under hold and minimises the held rows (PII erased, row and amounts kept); the request
// records held_until; pii.verify_erasure reports held rows as `held until …`, not residue;
// at expiry pii.hold_tick files a request that erases them, and verification is empty.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

async function processRequest(id: string): Promise<string> {
  while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
  return (await db.query('select pii.finish_request($1) as s', [id])).rows[0].s;
}

async function invoices(customerId: number) {
  const { rows } = await db.query(
    'select id::int, billing_name, amount::text from app.invoices where customer_id = $1 order by id',
    [customerId],
  );
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase('legal_hold');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  await db.query(`
    create table app.invoices (id bigint primary key, customer_id bigint not null, billing_name text, amount numeric(12, 2) not null);
    create index on app.invoices (customer_id);
    insert into app.invoices select c * 10 + k, c, 'First' || c || ' Last' || c, 100 * k from generate_series(40, 42) c, generate_series(1, 2) k;
    select pii.register_table('app.invoices', 'customer_id', 'delete', unenforced_join => true);
    select pii.register_column('app.invoices', 'billing_name', 'null');`);
});
afterAll(() => db?.drop());

describe('erasure of a held subject', () => {
  let requestId: string;
  let holdId: string;

  it('minimises the held rows (PII erased, row and amount kept) and erases everything else', async () => {
    holdId = (
      await db.query(
        `select pii.place_hold(array['40'], 'invoices: tax retention', current_date + 30, array['app.invoices'::regclass]) as id`,
      )
    ).rows[0].id;
    requestId = (await db.query(`select pii.request_erasure(array['40', '41']) as id`)).rows[0].id;
    expect(await processRequest(requestId)).toBe('done');
    expect(await invoices(40)).toEqual([
      { id: 401, billing_name: null, amount: '100.00' },
      { id: 402, billing_name: null, amount: '200.00' },
    ]);
    expect(await invoices(41)).toEqual([]);
    expect(await invoices(42)).toHaveLength(2);
    // Not under hold: the events of the held subject go as usual.
    expect((await db.query('select count(*)::int as n from app.events where customer_id = 40')).rows[0].n).toBe(0);
    expect((await db.query('select email from app.customers where id = 40')).rows[0].email).toBeNull();
  });

  it('the request records held_until', async () => {
    const { rows } = await db.query(
      `select held_until = current_date + 30 as ok, rows_affected from pii.requests where id = $1`,
      [requestId],
    );
    expect(rows[0].ok).toBe(true);
    // Two invoices of 41 deleted, two of 40 minimised.
    expect(rows[0].rows_affected['app.invoices']).toBe(4);
  });

  it('pii.verify_erasure reports the held rows as held, with the date', async () => {
    const { rows } = await db.query(
      `select table_name, detail, detail = 'held until ' || (current_date + 30) as dated from pii.verify_erasure($1)`,
      [requestId],
    );
    expect(rows).toEqual([{ table_name: 'app.invoices', detail: expect.stringMatching(/^held until /), dated: true }]);
  });

  it('at expiry pii.hold_tick files a request that erases the held rows, and verification is empty', async () => {
    // Inject the clock: the hold ended yesterday.
    await db.query(`update pii.legal_holds set held_until = current_date - 1 where id = $1`, [holdId]);
    const { rows } = await db.query(`select notice from pii.hold_tick() where hold_id = $1`, [holdId]);
    expect(rows).toEqual([{ notice: 'hold_expired' }]);
    const child = (await db.query('select expiry_request_id as id from pii.legal_holds where id = $1', [holdId]))
      .rows[0].id;
    expect((await db.query('select source, total from pii.requests where id = $1', [child])).rows[0]).toEqual({
      source: `hold_expiry:${holdId}`,
      total: '1',
    });
    expect(await processRequest(child)).toBe('done');
    expect(await invoices(40)).toEqual([]);
    expect((await db.query('select * from pii.verify_erasure($1)', [child])).rows).toEqual([]);
    expect((await db.query('select * from pii.verify_erasure($1)', [requestId])).rows).toEqual([]);
    const { rows: notes } = await db.query(
      `select details from pii.notifications where hold_id = $1 and kind = 'hold_expired'`,
      [holdId],
    );
    expect(notes[0].details.request_id).toBe(child);
  });

  it('erase_subjects (now, in the caller’s transaction) honours holds too', async () => {
    await db.query(`select pii.place_hold(array['42'], 'dispute', current_date + 5)`);
    await db.query(`select * from pii.erase_subjects(array['42'])`);
    expect(await invoices(42)).toEqual([
      { id: 421, billing_name: null, amount: '100.00' },
      { id: 422, billing_name: null, amount: '200.00' },
    ]);
    // The hold covers every table: the events are kept too, minimised (the email out of the payload).
    const { rows } = await db.query(
      `select count(*)::int as n, count(*) filter (where payload ? 'email')::int as with_email from app.events where customer_id = 42`,
    );
    expect(rows[0]).toEqual({ n: 4, with_email: 0 });
  });

  it('a guard scrubs a held subject’s re-ingested row by minimising it, not deleting it (attack: resync PII into a held table)', async () => {
    await db.query(`insert into app.invoices values (423, 42, 'First42 Last42', 300)`);
    expect(await invoices(42)).toEqual([
      { id: 421, billing_name: null, amount: '100.00' },
      { id: 422, billing_name: null, amount: '200.00' },
      { id: 423, billing_name: null, amount: '300.00' },
    ]);
  });
});
