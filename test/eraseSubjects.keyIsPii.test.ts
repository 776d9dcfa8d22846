// key_is_pii: contacts keyed by their email. Erasure replaces the key with its pseudonym
// in the subject table and every referencing column, in one transaction; joins survive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('key_is_pii');
  await loadFixture(db, 'contacts_email_key.sql');
  await db.query(`
    select pii.register_subject_table('mail.contacts', 'email', key_is_pii => true);
    select pii.register_column('mail.contacts', 'full_name', 'null', 'partial:1,0', 'name');
    select pii.register_column('mail.contacts', 'city', 'null', 'hide', 'address');
    select pii.register_column('mail.contacts', 'subscribed', 'set:false', 'clear', 'consent');
    select pii.register_table('mail.sends', 'contact_email', 'anonymize');
    select pii.register_table('mail.tickets', 'contact_email', 'anonymize', unenforced_join => true);
    select pii.register_column('mail.tickets', 'subject', 'keep', 'clear', 'none');
    select pii.register_table('mail.unsubscribes', 'contact_email', 'delete', unenforced_join => true);`);
});
afterAll(() => db.drop());

describe('pii.erase_subjects with a PII key', () => {
  it('refuses a referencing foreign key that does not cascade updates', async () => {
    await db.query(
      `create table mail.bad_ref (id bigint primary key, contact_email text references mail.contacts (email))`,
    );
    await expectPgError(
      db.query(`select pii.register_table('mail.bad_ref', 'contact_email', 'anonymize')`),
      '55000',
      /foreign key bad_ref_contact_email_fkey on mail\.bad_ref must be ON UPDATE CASCADE/,
    );
    await db.query('drop table mail.bad_ref');
  });

  it('refuses key_is_pii on a non-text key', async () => {
    await db.query(`create table mail.other (id bigint primary key)`);
    await expectPgError(
      db.query(`select pii.register_subject_table('mail.other', 'id', key_is_pii => true)`),
      '42804',
      /key_is_pii needs a text key column/,
    );
    await db.query('drop table mail.other');
  });

  it('replaces the email everywhere with one pseudonym and keeps the joins', async () => {
    const pseudonymOf = (
      await db.query(
        // HMAC-SHA256 under the pseudonym key (pii_internal.pseudonym_key), not the install key.
        `with k as (select inner_key, outer_key from pii_internal.pseudonym_key),
              b as (select left(encode(sha256(k.outer_key || sha256(k.inner_key || convert_to('pseudonym' || chr(31) || 'ann@example.com', 'UTF8'))), 'hex'), 24) as b from k)
         select 'anon_' || b.b || left(encode(sha256(k.outer_key || sha256(k.inner_key || convert_to('pseudonym tag' || chr(31) || b.b, 'UTF8'))), 'hex'), 8) as p
         from k, b`,
      )
    ).rows[0].p;
    const { rows } = await db.query(
      `select table_name, rows_affected from pii.erase_subjects(array['ann@example.com'])`,
    );
    // sends has no PII column and follows the key through its cascading foreign key: no statement.
    expect(rows).toEqual([
      { table_name: 'mail.tickets', rows_affected: '1' },
      { table_name: 'mail.unsubscribes', rows_affected: '1' },
      { table_name: 'mail.contacts', rows_affected: '1' },
    ]);
    const contacts = await db.query(
      `select email, full_name, city, subscribed from mail.contacts order by full_name nulls first`,
    );
    expect(contacts.rows).toEqual([
      { email: pseudonymOf, full_name: null, city: null, subscribed: false },
      { email: 'bob@example.com', full_name: 'Bob Baker', city: 'York', subscribed: true },
      { email: 'cy@example.com', full_name: 'Cy Cooper', city: 'Bath', subscribed: false },
    ]);
    // sends follows through ON UPDATE CASCADE; tickets (no foreign key) is rewritten by Lethe.
    const joined = await db.query(
      `select s.campaign, c.full_name from mail.sends s join mail.contacts c on c.email = s.contact_email order by s.id`,
    );
    expect(joined.rows).toEqual([
      { campaign: 'spring', full_name: null },
      { campaign: 'summer', full_name: null },
      { campaign: 'spring', full_name: 'Bob Baker' },
    ]);
    const tickets = await db.query(`select id, contact_email, subject from mail.tickets order by id`);
    expect(tickets.rows).toEqual([
      { id: '1', contact_email: pseudonymOf, subject: 'Refund' },
      { id: '2', contact_email: 'bob@example.com', subject: 'Hello' },
    ]);
    const unsub = await db.query(`select contact_email from mail.unsubscribes order by id`);
    expect(unsub.rows).toEqual([{ contact_email: 'cy@example.com' }]);
  });

  it('leaves the raw email nowhere in the registered tables', async () => {
    const { rows } = await db.query(
      `select count(*) as n from (
         select email as v from mail.contacts union all select contact_email from mail.sends
         union all select contact_email from mail.tickets union all select contact_email from mail.unsubscribes) x
       where v = 'ann@example.com'`,
    );
    expect(rows[0].n).toBe('0');
  });

  it('stores the tombstone as a keyed hash and pseudonym, never the email', async () => {
    const { rows } = await db.query(`select t::text as row from pii_internal.tombstones t`);
    expect(rows).toHaveLength(1);
    expect(rows[0].row).not.toMatch(/ann@example\.com/);
    expect((await db.query(`select erased from pii.was_erased('ann@example.com')`)).rows).toEqual([{ erased: true }]);
  });

  it('reports the unregistered free-text column that still quotes the email through verification', async () => {
    const rid = (await db.query(`select pii.request_erasure(array['bob@example.com', 'nobody@example.com']) as id`))
      .rows[0].id;
    await db.query(`update mail.tickets set body = 'bob@example.com wrote in' where id = 2`);
    while ((await db.query(`select pii.process_request_chunk($1) as n`, [rid])).rows[0].n > 0);
    expect((await db.query(`select pii.finish_request($1) as s`, [rid])).rows[0].s).toBe('failed');
    const residuals = await db.query(`select table_name, column_name, detail from pii.verify_erasure($1)`, [rid]);
    expect(residuals.rows).toEqual([
      {
        table_name: 'mail.tickets',
        column_name: 'body',
        detail: 'identifier of the subject found in an unregistered column',
      },
    ]);
    const status = await db.query(
      `select status, total, matched, unmatched, residual_count from pii.request_status($1)`,
      [rid],
    );
    expect(status.rows[0]).toEqual({ status: 'failed', total: '2', matched: '1', unmatched: '1', residual_count: 1 });
  });
});
