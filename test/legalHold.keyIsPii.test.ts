// Legal holds when the subject key is PII (key_is_pii: contacts keyed by their email).
// Erasure replaces the key with its pseudonym in every row, the held rows too, so no key
// hashes to the subject any more: at expiry pii.hold_tick must find the held rows under the
// pseudonym and file the request that erases them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

async function processRequest(id: string): Promise<string> {
  while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
  return (await db.query('select pii.finish_request($1) as s', [id])).rows[0].s;
}

async function unsubscribes(): Promise<Array<{ id: number; contact_email: string }>> {
  return (await db.query('select id::int, contact_email from mail.unsubscribes order by id')).rows;
}

beforeAll(async () => {
  db = await createTestDatabase('legal_hold_key_is_pii');
  await loadFixture(db, 'contacts_email_key.sql');
  await db.query(`
    select pii.register_subject_table('mail.contacts', 'email', key_is_pii => true);
    select pii.register_column('mail.contacts', 'full_name', 'null', 'partial:1,0', 'name');
    select pii.register_table('mail.sends', 'contact_email', 'anonymize');
    select pii.register_table('mail.tickets', 'contact_email', 'anonymize', unenforced_join => true);
    select pii.register_column('mail.tickets', 'body', 'null');
    select pii.register_table('mail.unsubscribes', 'contact_email', 'delete', unenforced_join => true);`);
});
afterAll(() => db?.drop());

describe('pii.hold_tick with a PII subject key', () => {
  let holdId: string;
  let requestId: string;

  it('erasure keeps the held row under the pseudonym, minimised', async () => {
    holdId = (
      await db.query(
        `select pii.place_hold(array['ann@example.com'], 'proof of opt-out', current_date + 30,
                               array['mail.unsubscribes'::regclass]) as id`,
      )
    ).rows[0].id;
    requestId = (await db.query(`select pii.request_erasure(array['ann@example.com']) as id`)).rows[0].id;
    expect(await processRequest(requestId)).toBe('done');
    const rows = await unsubscribes();
    expect(rows).toHaveLength(2);
    expect(rows[0]!.contact_email).toMatch(/^anon_[0-9a-f]{32}$/);
    expect(rows[1]).toEqual({ id: 2, contact_email: 'cy@example.com' });
  });

  it('at expiry files a request (source hold_expiry:<id>) that erases the held row, and verification is empty', async () => {
    // Inject the clock: the hold ended yesterday.
    await db.query(`update pii.legal_holds set held_until = current_date - 1 where id = $1`, [holdId]);
    expect((await db.query(`select notice from pii.hold_tick() where hold_id = $1`, [holdId])).rows).toEqual([
      { notice: 'hold_expired' },
    ]);
    const child = (await db.query('select expiry_request_id as id from pii.legal_holds where id = $1', [holdId]))
      .rows[0].id;
    expect(child).not.toBeNull();
    expect((await db.query('select source, total, matched from pii.requests where id = $1', [child])).rows[0]).toEqual({
      source: `hold_expiry:${holdId}`,
      total: '1',
      matched: '1',
    });
    expect(await processRequest(child)).toBe('done');
    expect(await unsubscribes()).toEqual([{ id: 2, contact_email: 'cy@example.com' }]);
    expect((await db.query('select * from pii.verify_erasure($1)', [child])).rows).toEqual([]);
    expect((await db.query('select * from pii.verify_erasure($1)', [requestId])).rows).toEqual([]);
    // Nothing of Ann is anywhere, and Bob was left alone.
    const { rows } = await db.query(`
      select (select count(*)::int from mail.contacts where email = 'ann@example.com')
           + (select count(*)::int from mail.sends where contact_email = 'ann@example.com')
           + (select count(*)::int from mail.tickets where contact_email = 'ann@example.com') as ann,
             (select count(*)::int from mail.sends where contact_email = 'bob@example.com') as bob`);
    expect(rows[0]).toEqual({ ann: 0, bob: 1 });
  });
});
