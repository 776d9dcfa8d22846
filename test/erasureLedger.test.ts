// pii.erasure_ledger: one chained entry per subject for every finished erasure (direct
// pii.erase_subjects calls and request chunks, erase and delete mode), a 'return' entry
// for pii.allow_return; keyed hashes only; append-only; pii.ledger_entries_after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;

const hashOf = async (key: string) =>
  (await db.query(`select encode(pii_internal.subject_hash(null, $1), 'hex') as h`, [key])).rows[0].h as string;

async function runRequest(keys: string[], mode = 'erase'): Promise<string> {
  const { rows } = await db.query('select pii.request_erasure($1::text[], mode => $2) as id', [keys, mode]);
  const id = rows[0].id as string;
  while ((await db.query('select pii.process_request_chunk($1, 2) as n', [id])).rows[0].n > 0);
  await db.query('select pii.finish_request($1)', [id]);
  return id;
}

const entries = async () =>
  (
    await db.query(
      `select seq, encode(subject_hash, 'hex') as subject_hash, mode, request_id, scoped, secret_id, erased_at
       from pii.erasure_ledger order by seq`,
    )
  ).rows;

beforeAll(async () => {
  db = await createTestDatabase('ledger');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
});
afterAll(() => db?.drop());

describe('pii.erasure_ledger', () => {
  it('gets one entry per subject from a direct pii.erase_subjects call, with its mode and no request', async () => {
    await db.query(`select * from pii.erase_subjects(array['11', '12', '12', '99999'])`);
    await db.query(`select * from pii.erase_subjects(array['13'], mode => 'delete')`);
    const rows = await entries();
    expect(rows.map((r) => [r.subject_hash, r.mode, r.request_id])).toEqual(
      expect.arrayContaining([
        [await hashOf('11'), 'erase', null],
        [await hashOf('12'), 'erase', null],
        [await hashOf('99999'), 'erase', null],
        [await hashOf('13'), 'delete', null],
      ]),
    );
    expect(rows).toHaveLength(4);
    expect(rows.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4]);
    const { rows: sid } = await db.query(`select pii.secret_id() as s`);
    expect(new Set(rows.map((r) => r.secret_id))).toEqual(new Set([sid[0].s]));
    expect(rows.every((r) => r.scoped === false)).toBe(true);
    // Nothing waits in the staging table once the transaction is over.
    expect((await db.query(`select unledgered from pii.ledger_status()`)).rows[0].unledgered).toBe('0');
  });

  it('gets one entry per erased subject from every request chunk, with the request id and mode', async () => {
    const erase = await runRequest(['14', '15', '16']);
    const del = await runRequest(['17'], 'delete');
    const rows = (await entries()).filter((r) => r.request_id);
    expect(rows.map((r) => [r.subject_hash, r.mode, r.request_id]).sort()).toEqual(
      [
        [await hashOf('14'), 'erase', erase],
        [await hashOf('15'), 'erase', erase],
        [await hashOf('16'), 'erase', erase],
        [await hashOf('17'), 'delete', del],
      ].sort(),
    );
  });

  it('records the time the tombstone was marked erased', async () => {
    const { rows } = await db.query(
      `select pg_catalog.count(*)::int as n from pii.erasure_ledger l join pii_internal.tombstones t using (subject_hash)
       where l.erased_at = t.erased_at`,
    );
    expect(rows[0].n).toBe(8);
  });

  it('gets an entry from each erasure that ran: a later request erases an erased subject again', async () => {
    const before = (await entries()).length;
    const id = await runRequest(['14', '18']);
    const added = (await entries()).slice(before);
    expect(added.map((r) => [r.subject_hash, r.request_id]).sort()).toEqual(
      [
        [await hashOf('14'), id],
        [await hashOf('18'), id],
      ].sort(),
    );
  });

  it("gets a 'return' entry from pii.allow_return", async () => {
    await db.query(`select pii.allow_return('11')`);
    const last = (await entries()).at(-1);
    expect(last).toMatchObject({ subject_hash: await hashOf('11'), mode: 'return', request_id: null });
  });

  it('holds keyed hashes only: no subject key appears in any entry', async () => {
    const { rows } = await db.query(`select pii_internal.ledger_entry_json(l)::text as line from pii.erasure_ledger l`);
    const text = rows.map((r) => r.line).join('\n');
    for (const key of ['"11"', '"12"', '"13"', 'user11', 'user12@example.com', 'First14'])
      expect(text).not.toContain(key);
    expect(text).toMatch(/"subject_hash": "[0-9a-f]{64}"/);
  });

  it('is append-only, even for the superuser (42501)', async () => {
    await expectPgError(db.query(`update pii.erasure_ledger set mode = 'erase'`), '42501', /append-only/);
    await expectPgError(db.query(`delete from pii.erasure_ledger`), '42501', /append-only/);
    await expectPgError(db.query(`truncate pii.erasure_ledger`), '42501', /append-only/);
  });

  it('rolls back with the erasure: an erasure that does not commit leaves no entry', async () => {
    const before = (await entries()).length;
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select * from pii.erase_subjects(array['19'])`);
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect((await entries()).length).toBe(before);
  });
});

describe('pii.ledger_entries_after', () => {
  it('returns the entries after a sequence number as JSON objects, in order, up to the limit', async () => {
    const { rows } = await db.query(`select seq, entry from pii.ledger_entries_after(2, 3)`);
    expect(rows.map((r) => Number(r.seq))).toEqual([3, 4, 5]);
    expect(Object.keys(rows[0].entry).sort()).toEqual([
      'entry_hash',
      'erased_at',
      'identifier_hashes',
      'kind',
      'mode',
      'prev_hash',
      'request_id',
      'scoped',
      'secret_id',
      'seq',
      'subject_hash',
    ]);
    expect(rows[1].entry.prev_hash).toBe(rows[0].entry.entry_hash);
    expect(rows[0].entry.erased_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });
});

describe("the ledger entries' hashes", () => {
  // The append writes each entry's content as text (not through jsonb); verify_audit_chain and
  // restore_check re-hash it with pii_internal.ledger_entry_content. Both must agree byte for byte,
  // for every kind of entry: direct and by request, erase, delete and return, with identifier
  // hashes, a scoped kind and a kind name that JSON has to escape.
  it('are the keyed hashes of pii_internal.ledger_entry_content, for every entry written', async () => {
    const kind = `it's "β"\\ kind`;
    await db.query(`create schema ledger_kind;
      create table ledger_kind.people (store integer, id integer, email text, primary key (store, id));
      insert into ledger_kind.people values (1, 1, 'Ann@Example.org'), (1, 2, 'bo@example.org');`);
    await db.query(
      `select pii.register_subject_table('ledger_kind.people', 'id', kind => $1, scope_column => 'store')`,
      [kind],
    );
    await db.query(`select pii.register_column('ledger_kind.people', 'email', 'null')`);
    await db.query(`select pii.register_identifier('ledger_kind.people', 'email', 'email')`);
    await db.query(`select * from pii.erase_subjects(array['1', '2'], array['1'], kind => $1)`, [kind]);
    const { rows: weird } = await db.query(
      `select scoped, cardinality(identifier_hashes) as n from pii.erasure_ledger where kind = $1 order by seq`,
      [kind],
    );
    expect(weird).toEqual([
      { scoped: true, n: 1 },
      { scoped: true, n: 1 },
    ]);
    const { rows } = await db.query(
      `select count(*)::int as n,
              count(*) filter (where l.entry_hash <> pii_internal.chain_hash('erasure_ledger',
                pii_internal.ledger_entry_content(l.seq, l.subject_hash, l.identifier_hashes, l.kind, l.scoped, l.mode,
                                                  l.request_id, l.erased_at, l.secret_id)))::int as wrong,
              count(distinct l.mode)::int as modes, count(l.request_id)::int as by_request
       from pii.erasure_ledger l`,
    );
    expect(rows[0]).toMatchObject({ wrong: 0, modes: 3 });
    expect(rows[0].by_request).toBeGreaterThan(0);
    expect(rows[0].n).toBeGreaterThan(10);
    expect((await db.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
  });
});
