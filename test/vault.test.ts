// The tokenized vault (F18, F24): pii.tokenize / tokenize_many / detokenize, crypto-shredding
// on every erasure path, the residual check verification uses, and what a full dump of the
// database still holds once subjects are erased.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { dumpDatabaseText } from './helpers/dumpDatabase.js';
import { createLethe } from '../src/api/index.js';

let db: TestDatabase;

interface Detokenized {
  token: string | null;
  kind: string | null;
  value: string | null;
  status: string;
}

async function signup(id: number, email: string, phone: string): Promise<{ email: string; phone: string }> {
  const { rows } = await db.query(
    `insert into shop.members (id, email_token, phone_token)
     values ($1::bigint, pii.tokenize($4, 'email', $2), pii.tokenize($4, 'phone', $3))
     returning email_token, phone_token`,
    [id, email, phone, String(id)],
  );
  return { email: rows[0].email_token, phone: rows[0].phone_token };
}

async function detokenize(tokens: (string | null)[], purpose = 'campaign:1'): Promise<Detokenized[]> {
  return (await db.query<Detokenized>('select * from pii.detokenize($1::text[], $2)', [tokens, purpose])).rows;
}

async function auditCount(action: string): Promise<number> {
  return Number((await db.query('select count(*) as n from pii.audit where action = $1', [action])).rows[0].n);
}

beforeAll(async () => {
  db = await createTestDatabase('vault');
  await loadFixture(db, 'vault_signup.sql');
});
afterAll(() => db.drop());

describe('pii.tokenize and pii.detokenize', () => {
  it('stores tokens in the app table and resolves them in request order, unknown and NULL tokens included', async () => {
    const ada = await signup(1, 'ada@example.com', '+44 20 7946 0001');
    const bob = await signup(2, 'bob@example.com', '+44 20 7946 0002');
    expect(ada.email).toMatch(/^tok_[0-9a-f]{32}$/);
    expect(new Set([ada.email, ada.phone, bob.email, bob.phone]).size).toBe(4);

    const rows = await detokenize([bob.phone, 'tok_00000000000000000000000000000000', ada.email, null, ada.email]);
    expect(rows).toEqual([
      { token: bob.phone, kind: 'phone', value: '+44 20 7946 0002', status: 'ok' },
      { token: 'tok_00000000000000000000000000000000', kind: null, value: null, status: 'unknown' },
      { token: ada.email, kind: 'email', value: 'ada@example.com', status: 'ok' },
      { token: null, kind: null, value: null, status: 'unknown' },
      { token: ada.email, kind: 'email', value: 'ada@example.com', status: 'ok' },
    ]);
  });

  it('keeps only ciphertext: no value in the vault tables, one data key per subject', async () => {
    const { rows } = await db.query(
      `select (select count(*) from pii_internal.vault_entries e where position(convert_to('ada@example.com', 'UTF8') in e.ciphertext) > 0) as plain,
              (select count(*) from pii_internal.vault_keys) as keys,
              (select count(*) from pii_internal.vault_entries) as entries`,
    );
    expect(rows[0]).toEqual({ plain: '0', keys: '2', entries: '4' });
  });

  it('gives random tokens by default: the same value tokenized twice gets two tokens', async () => {
    const { rows } = await db.query(
      `select pii.tokenize('1', 'email', 'ada@example.com') as a, pii.tokenize('1', 'email', 'ada@example.com') as b`,
    );
    expect(rows[0].a).not.toBe(rows[0].b);
  });

  it('tokenize_many returns (ordinality, token) in input order for a whole batch', async () => {
    const keys = ['3', '4', '3'];
    const { rows } = await db.query(
      `select * from pii.tokenize_many($1::text[], array['email', 'email', 'phone'], array['c@example.com', 'd@example.com', '+1 555 0103'])`,
      [keys],
    );
    expect(rows.map((r) => r.ordinality)).toEqual(['1', '2', '3']);
    const resolved = await detokenize(rows.map((r) => r.token));
    expect(resolved.map((r) => r.value)).toEqual(['c@example.com', 'd@example.com', '+1 555 0103']);
  });

  it('writes exactly one audit row per detokenize call, with role, purpose, count and a keyed hash, never a token or value', async () => {
    const ada = (await db.query('select email_token, phone_token from shop.members where id = 1')).rows[0];
    const before = await auditCount('detokenize');
    await detokenize([ada.email_token, ada.phone_token, 'tok_unknown'], 'campaign:4711');
    expect(await auditCount('detokenize')).toBe(before + 1);
    const { rows } = await db.query(
      `select actor, details from pii.audit where action = 'detokenize' order by id desc limit 1`,
    );
    expect(rows[0].details).toMatchObject({ purpose: 'campaign:4711', tokens: 3, role: 'postgres' });
    expect(rows[0].details.token_list_hash).toMatch(/^[0-9a-f]{64}$/);
    const audit = JSON.stringify((await db.query('select * from pii.audit')).rows);
    expect(audit).not.toContain(ada.email_token);
    expect(audit).not.toContain('ada@example.com');
  });

  it('refuses bad input with a SQLSTATE and the position, never the value', async () => {
    const entries = async () => (await db.query(`select count(*) as n from pii_internal.vault_entries`)).rows[0].n;
    const before = await entries();
    await expectPgError(
      db.query(`select pii.tokenize_many(array['1', '2'], array['email'], array['a', 'b'])`),
      '22023',
      /one element per value \(2 keys, 1 kinds, 2 values\)/,
    );
    await expectPgError(
      db.query(`select pii.tokenize_many(array['1', '2'], array['email', 'email'], array['a', null])`),
      '22004',
      /^value #2 is NULL$/,
    );
    await expectPgError(
      db.query(`select pii.tokenize_many(array['1', 'x@example.com'], array['email', 'email'], array['a', 'b'])`),
      '22P02',
      /^subject key #2 is not a valid bigint$/,
    );
    await expectPgError(db.query(`select pii.tokenize('1', 'E-mail', 'a')`), '22023', /kind #1 must be a name/);
    await expectPgError(
      db.query(`select * from pii.detokenize(array['tok_x'], 'ada@example.com')`),
      '22023',
      /^purpose must be 1 to 100/,
    );
    await expectPgError(db.query(`select * from pii.detokenize(null, 'x')`), '22004', /tokens must not be NULL/);
    expect(await entries()).toBe(before);
  });

  it('a 100k-token detokenize returns 100k rows and writes one audit row', async () => {
    const before = await auditCount('detokenize');
    const { rows } = await db.query(
      `select status, count(*) as n
       from pii.detokenize(array(select 'tok_' || md5(i::text) from generate_series(1, 100000) i), 'bulk:test')
       group by status`,
    );
    // Well-formed but never issued: each has a 2^-32 chance of carrying a valid keyed tag.
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.find((r) => r.status === 'unknown')?.n).toMatch(/^(99999\d|100000)$/);
    expect(rows.every((r) => r.status !== 'ok')).toBe(true);
    expect(await auditCount('detokenize')).toBe(before + 1);
  });
  it('two transactions tokenizing for the same new subject at once share one data key', async () => {
    const [a, b] = [await db.pool.connect(), await db.pool.connect()];
    try {
      await a.query('begin');
      const first = (await a.query(`select pii.tokenize('77', 'email', 'first@example.com') as t`)).rows[0].t;
      const second = b.query(`select pii.tokenize('77', 'phone', '+1 555 0177') as t`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await a.query('commit');
      const t2 = (await second).rows[0].t;
      expect((await detokenize([first, t2])).map((r) => r.status)).toEqual(['ok', 'ok']);
      const keys = await db.query(
        `select count(*) as n from pii_internal.vault_keys where subject_hash = pii_internal.subject_hash(null, '77')`,
      );
      expect(keys.rows[0].n).toBe('1');
    } finally {
      a.release();
      b.release();
    }
  });
});

describe('Lethe.tokenize and Lethe.detokenize (TypeScript API)', () => {
  it('tokenizes a batch and resolves it in order', async () => {
    const lethe = createLethe({ pool: db.pool });
    const tokens = await lethe.tokenize([
      { subjectKey: '20', kind: 'email', value: 'ts@example.com' },
      { subjectKey: '21', kind: 'phone', value: '+1 555 0121' },
    ]);
    expect(await lethe.detokenize([tokens[1]!, tokens[0]!], 'api:test')).toEqual([
      { token: tokens[1], kind: 'phone', value: '+1 555 0121', status: 'ok' },
      { token: tokens[0], kind: 'email', value: 'ts@example.com', status: 'ok' },
    ]);
  });
});

describe('deterministic kinds (pii.set_token_kind)', () => {
  it('gives the same token for the same normalised value in a scope', async () => {
    await db.query(`select pii.set_token_kind('login_email', deterministic => true, normaliser => 'email')`);
    const { rows } = await db.query(
      `select * from pii.tokenize_many(array['5', '5', '6'], array['login_email', 'login_email', 'login_email'],
                                       array[' Eve@Example.com', 'eve@example.com', 'eve@example.org'])`,
    );
    expect(rows[0].token).toBe(rows[1].token);
    expect(rows[2].token).not.toBe(rows[0].token);
    expect(rows[0].token).toMatch(/^tok_[0-9a-f]{32}$/);
    const resolved = await detokenize([rows[0].token]);
    expect(resolved[0]).toMatchObject({ status: 'ok', value: ' Eve@Example.com' });
  });

  it('a deterministic token of a subject erased and let back in resolves again when re-tokenized', async () => {
    const first = (await db.query(`select pii.tokenize('8', 'login_email', 'zoe@example.com') as t`)).rows[0].t;
    await db.query(`select * from pii.erase_subjects(array['8'])`);
    expect((await detokenize([first]))[0]?.status).toBe('erased');
    await db.query(`select pii.allow_return('8')`);
    const again = (await db.query(`select pii.tokenize('8', 'login_email', 'zoe@example.com') as t`)).rows[0].t;
    expect(again).toBe(first);
    expect((await detokenize([first]))[0]).toMatchObject({ status: 'ok', value: 'zoe@example.com' });
  });

  it('refuses an unknown normaliser', async () => {
    await expectPgError(db.query(`select pii.set_token_kind('x', true, 'upper')`), '22023', /normaliser must be/);
  });
});

describe('crypto-shredding on erasure', () => {
  it('pii.erase_subjects destroys the entries and the data key in the same transaction: tokens answer erased', async () => {
    const ada = (await db.query('select email_token, phone_token from shop.members where id = 1')).rows[0];
    const bob = (await db.query('select email_token from shop.members where id = 2')).rows[0];
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select * from pii.erase_subjects(array['1'])`);
      const inside = await client.query(`select status from pii.detokenize($1::text[], 'x')`, [[ada.email_token]]);
      expect(inside.rows[0].status).toBe('erased');
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect((await detokenize([ada.email_token]))[0]?.status).toBe('ok');

    await db.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await detokenize([ada.email_token, ada.phone_token, bob.email_token])).toEqual([
      { token: ada.email_token, kind: null, value: null, status: 'erased' },
      { token: ada.phone_token, kind: null, value: null, status: 'erased' },
      { token: bob.email_token, kind: 'email', value: 'bob@example.com', status: 'ok' },
    ]);
    const { rows } = await db.query(
      `select (select count(*) from pii_internal.vault_keys where subject_hash = pii_internal.subject_hash(null, '1')) as keys,
              (select count(*) from pii_internal.vault_entries where subject_hash = pii_internal.subject_hash(null, '1')) as entries,
              (select count(*) from pii_internal.vault_keys where subject_hash = pii_internal.subject_hash(null, '2')) as other_keys,
              (select count(*) from pii_internal.vault_residuals(array[pii_internal.subject_hash(null, '1')])) as residuals`,
    );
    expect(rows[0]).toEqual({ keys: '0', entries: '0', other_keys: '1', residuals: '0' });
  });

  it('refuses to tokenize for a subject with a tombstone (NULL token, nothing stored)', async () => {
    const { rows } = await db.query(`select pii.tokenize('1', 'email', 'ada@example.com') as t`);
    expect(rows[0].t).toBeNull();
    const n = await db.query(
      `select count(*) as n from pii_internal.vault_keys where subject_hash = pii_internal.subject_hash(null, '1')`,
    );
    expect(n.rows[0].n).toBe('0');
  });

  it.each(['erase', 'delete'])('a request in mode %s shreds the subject when its chunk runs', async (mode) => {
    const id = mode === 'erase' ? 10 : 11;
    const t = await signup(id, `m${id}@example.com`, `+1 555 01${id}`);
    await db.query(`insert into shop.visits (member_id, page) values ($1, '/home')`, [id]);
    const request = (await db.query(`select pii.request_erasure(array[$1::text], mode => $2) as id`, [id, mode]))
      .rows[0].id;
    // Flagged, not erased yet: the value still resolves until the erasure runs.
    expect((await detokenize([t.email]))[0]?.status).toBe('ok');
    while ((await db.query('select pii.process_request_chunk($1) as n', [request])).rows[0].n > 0);
    expect(await detokenize([t.email, t.phone])).toEqual([
      { token: t.email, kind: null, value: null, status: 'erased' },
      { token: t.phone, kind: null, value: null, status: 'erased' },
    ]);
    expect((await db.query('select pii.finish_request($1) as s', [request])).rows[0].s).toBe('done');
  });

  it('pii.vault_residuals reports an entry or key left for an erased subject', async () => {
    await db.query(
      `insert into pii_internal.vault_keys (subject_hash, wrapped_key) values (pii_internal.subject_hash(null, '1'), '\\x00');
       insert into pii_internal.vault_entries (token, subject_hash, kind, ciphertext) values ('tok_left', pii_internal.subject_hash(null, '1'), 'email', '\\x00')`,
    );
    const { rows } = await db.query(
      `select table_name, column_name, detail from pii_internal.vault_residuals(array[pii_internal.subject_hash(null, '1')]) order by 1`,
    );
    expect(rows).toEqual([
      {
        table_name: 'pii_internal.vault_entries',
        column_name: 'ciphertext',
        detail: 'vault entry of an erased subject not shredded',
      },
      {
        table_name: 'pii_internal.vault_keys',
        column_name: 'wrapped_key',
        detail: 'data key of an erased subject not destroyed',
      },
    ]);
    await db.query(
      `update pii_internal.tombstones set erased_at = now() where subject_hash = pii_internal.subject_hash(null, '1')`,
    );
    expect(
      (await db.query(`select * from pii_internal.vault_residuals(array[pii_internal.subject_hash(null, '1')])`)).rows,
    ).toEqual([]);
  });

  it('masked views show tokens, never values', async () => {
    await db.query('select * from pii.apply_masking()');
    const { rows } = await db.query('select email_token from masked.members where id = 2');
    expect(rows[0].email_token).toMatch(/^tok_[0-9a-f]{32}$/);
  });

  it('a dump of the whole database holds none of the erased subjects values', async () => {
    const dump = await dumpDatabaseText(db.url);
    expect(dump).toContain('DEACTIVATED');
    for (const value of ['ada@example.com', '+44 20 7946 0001', 'm10@example.com', 'm11@example.com']) {
      expect(dump).not.toContain(value);
    }
    // Nor of anyone's: the vault holds ciphertext only.
    expect(dump).not.toContain('bob@example.com');
  });
});
