// pii.verify_audit_chain: the audit trail and the erasure ledger are hash-chained, so a row
// deleted or altered by someone with the owner's rights (append-only triggers disabled) is
// found at that link. Each attack runs in a transaction that is rolled back afterwards.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('chain');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  await db.query(`select * from pii.erase_subjects(array['11', '12', '13'])`);
  const { rows } = await db.query(`select pii.request_erasure(array['14', '15']) as id`);
  while ((await db.query('select pii.process_request_chunk($1) as n', [rows[0].id])).rows[0].n > 0);
  await db.query('select pii.finish_request($1)', [rows[0].id]);
});
afterAll(() => db?.drop());

/** Runs the attack as the superuser in a transaction, returns what verify_audit_chain says, rolls back. */
async function afterAttack(attack: string): Promise<{ chain: string; seq: string | null; problem: string }[]> {
  const client: pg.PoolClient = await db.pool.connect();
  try {
    await client.query('begin');
    await client.query(attack);
    return (await client.query(`select * from pii.verify_audit_chain()`)).rows;
  } finally {
    await client.query('rollback');
    client.release();
  }
}

const auditSeq = async (action: string) =>
  (await db.query(`select min(chain_seq)::text as s from pii.audit where action = $1`, [action])).rows[0].s as string;

describe('pii.verify_audit_chain', () => {
  it('reports nothing when both chains are intact, and audit rows from before the chain existed are in it', async () => {
    expect((await db.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    const { rows } = await db.query(
      `select count(*)::int as n, min(chain_seq)::int as first, max(chain_seq)::int as last,
              count(*) filter (where prev_hash is null)::int as unlinked from pii.audit`,
    );
    expect(rows[0]).toEqual({ n: rows[0].last, first: 1, last: rows[0].n, unlinked: 1 });
  });

  it('finds an audit row deleted with the append-only triggers disabled, at that link', async () => {
    const seq = await auditSeq('erase_subjects');
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      delete from pii.audit where chain_seq = ${seq}`);
    expect(found).toEqual([
      { chain: 'audit', seq: String(Number(seq) + 1), problem: `entries ${seq} to ${seq} are missing` },
    ]);
  });

  it('finds an audit row altered with the triggers disabled (its counts rewritten), at that row', async () => {
    const seq = await auditSeq('erase_chunk');
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      update pii.audit set details = details || '{"items": 0}' where chain_seq = ${seq}`);
    expect(found).toEqual([{ chain: 'audit', seq, problem: 'entry altered: its hash does not match its content' }]);
  });

  it('finds an altered row whose hash was recomputed without the key (plain sha256), at that row', async () => {
    const seq = await auditSeq('request_finished');
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      update pii.audit set action = 'nothing', entry_hash = sha256(convert_to(action, 'UTF8')) where chain_seq = ${seq}`);
    expect(found[0]).toMatchObject({ chain: 'audit', seq });
  });

  it('finds an altered row that claims another HMAC secret to escape the re-hash', async () => {
    const seq = await auditSeq('erase_chunk');
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      update pii.audit set details = '{}', secret_id = '0123456789abcdef' where chain_seq = ${seq}`);
    expect(found).toEqual([
      { chain: 'audit', seq, problem: "entry claims another HMAC secret after entries made with this database's" },
    ]);
  });

  it('finds the last audit rows deleted (the head remembers how far the chain went)', async () => {
    const { rows } = await db.query(`select max(chain_seq)::int as last from pii.audit`);
    const last = rows[0].last as number;
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      delete from pii.audit where chain_seq >= ${last - 1}`);
    expect(found).toEqual([
      {
        chain: 'audit',
        seq: String(last),
        problem: `entries ${last - 1} to ${last} are missing (the head is at ${last})`,
      },
    ]);
  });

  it('finds an audit row inserted around the chain (trigger disabled)', async () => {
    const found = await afterAttack(`alter table pii.audit disable trigger user;
      insert into pii.audit (action) values ('forged')`);
    expect(found).toEqual([
      { chain: 'audit', seq: null, problem: expect.stringMatching(/^audit row \d+ is outside the chain$/) },
    ]);
  });

  it('finds a ledger entry deleted, and one altered, with the ledger triggers disabled', async () => {
    const deleted = await afterAttack(`alter table pii.erasure_ledger disable trigger user;
      delete from pii.erasure_ledger where seq = 2`);
    expect(deleted).toEqual([{ chain: 'erasure_ledger', seq: '3', problem: 'entries 2 to 2 are missing' }]);
    const altered = await afterAttack(`alter table pii.erasure_ledger disable trigger user;
      update pii.erasure_ledger set mode = 'return' where seq = 4`);
    expect(altered).toEqual([
      { chain: 'erasure_ledger', seq: '4', problem: 'entry altered: its hash does not match its content' },
    ]);
  });

  it('finds a ledger entry swapped for a copy of another (a broken link)', async () => {
    const found = await afterAttack(`alter table pii.erasure_ledger disable trigger user;
      update pii.erasure_ledger l set prev_hash = o.prev_hash from pii.erasure_ledger o where l.seq = 3 and o.seq = 2`);
    expect(found).toEqual([
      { chain: 'erasure_ledger', seq: '3', problem: "broken link: prev_hash is not the previous entry's hash" },
    ]);
  });

  it('keeps both chains gapless and linked under concurrent erasures (appends serialised on the head)', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => String(30 + i));
    await Promise.all(keys.map((k) => db.query(`select * from pii.erase_subjects(array[$1])`, [k])));
    expect((await db.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    const { rows } = await db.query(`select count(*)::int as n, max(seq)::int as last from pii.erasure_ledger`);
    expect(rows[0].n).toBe(rows[0].last);
  });

  it('keeps both chains valid when direct erasures, request chunks and allow_return run at once', async () => {
    const { rows: req } = await db.query(`select pii.request_erasure(array['50', '51', '52', '53']) as id`);
    const chunks = async () => {
      while ((await db.query(`select pii.process_request_chunk($1, 1) as n`, [req[0].id])).rows[0].n > 0);
    };
    await Promise.all([
      chunks(),
      chunks(),
      ...['54', '55', '56'].map((k) => db.query(`select * from pii.erase_subjects(array[$1])`, [k])),
      db.query(`select pii.allow_return('30')`),
    ]);
    expect((await db.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    const { rows } = await db.query(
      `select count(*) filter (where mode = 'return')::int as returns, count(*) filter (where request_id = $1)::int as by_request,
              count(*)::int as n, max(seq)::int as last from pii.erasure_ledger`,
      [req[0].id],
    );
    expect(rows[0]).toMatchObject({ returns: 1, by_request: 4 });
    expect(rows[0].n).toBe(rows[0].last);
  });

  it('keeps both chains valid when the erasing session set extra_float_digits = 0 (times hashed as every session renders them)', async () => {
    // With extra_float_digits <= 0 an epoch with microseconds prints rounded to 15 digits, so
    // a hash taken from the session's rendering would not match the verifier's. Three
    // transactions: three times, of which at least one needs the sixteenth digit (1 - 10^-3).
    const client: pg.PoolClient = await db.pool.connect();
    try {
      await client.query('set extra_float_digits = 0');
      for (const k of ['60', '61', '62']) await client.query(`select * from pii.erase_subjects(array[$1])`, [k]);
    } finally {
      await client.query('reset extra_float_digits');
      client.release();
    }
    expect((await db.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
  });
});
