// The vault's key-encryption key outside the database (external KEK mode) and
// pii.vault_rotate_kek: a backup of the database restored into a new database cannot
// decrypt without the KEK, decrypts with it, and still cannot decrypt a subject erased
// before the backup (the data key is gone); a rotation rewraps every data key so the old
// KEK opens nothing while tokens and values stay the same.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { dumpDatabaseText } from './helpers/dumpDatabase.js';
import { type Backup, backupOf } from './helpers/restoreBackup.js';
import { vaultKekOptions } from '../src/piiApi/vaultKek.js';

let db: TestDatabase;
let serverMajor: number;
const backups: Backup[] = [];
const kek1 = randomBytes(32).toString('hex');
const kek2 = randomBytes(32).toString('hex');
const VALUES = {
  1: { email: 'ada@example.com', phone: '+44 20 7946 0001' },
  2: { email: 'bob@example.com', phone: '+44 20 7946 0002' },
  3: { email: 'cyd@example.com', phone: '+44 20 7946 0003' },
};
const tokens: Record<number, { email: string; phone: string }> = {};

/** One statement in a session of its own, carrying the given KEKs in its startup options. */
async function query<R extends pg.QueryResultRow = any>(
  url: string,
  text: string,
  params: unknown[] = [],
  keks: { current?: string; next?: string } = {},
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, options: vaultKekOptions(keks, undefined) });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

const detokenize = (url: string, ids: number[], current?: string) =>
  query<{ value: string | null; status: string }>(
    url,
    'select value, status from pii.detokenize($1::text[], $2)',
    [ids.flatMap((id) => [tokens[id]!.email, tokens[id]!.phone]), 'campaign:1'],
    { current },
  );
const resolved = (id: number) => [
  { value: VALUES[id as 1 | 2 | 3].email, status: 'ok' },
  { value: VALUES[id as 1 | 2 | 3].phone, status: 'ok' },
];
const erased = [
  { value: null, status: 'erased' },
  { value: null, status: 'erased' },
];
const kekCheck = (kek: string) =>
  createHash('sha256')
    .update(Buffer.concat([Buffer.from('lethe vault kek check'), Buffer.from(kek, 'hex')]))
    .digest('hex');

async function takeBackup(label: string): Promise<Backup> {
  const backup = await backupOf(db.url, serverMajor, label);
  backups.push(backup);
  await backup.take();
  return backup;
}

beforeAll(async () => {
  db = await createTestDatabase('vault_kek');
  await loadFixture(db, 'vault_signup.sql');
  serverMajor = Math.floor(Number((await db.query('show server_version_num')).rows[0].server_version_num) / 10000);
  for (const [id, v] of Object.entries(VALUES)) {
    const { rows } = await db.query(
      `insert into shop.members (id, email_token, phone_token)
       values ($1::bigint, pii.tokenize($1::text, 'email', $2), pii.tokenize($1::text, 'phone', $3))
       returning email_token, phone_token`,
      [id, v.email, v.phone],
    );
    tokens[Number(id)] = { email: rows[0].email_token, phone: rows[0].phone_token };
  }
  // Sessions of their own from here (query): a template backup closes every session of the database.
});
afterAll(async () => {
  for (const b of backups) await b.cleanup();
  await db.drop();
});

describe('pii.vault_rotate_kek', () => {
  it('moves the KEK out of the database: every data key rewrapped, only a check value kept, audited with counts', async () => {
    const before = await query(db.url, 'select subject_hash, wrapped_key from pii_internal.vault_keys order by 1');
    const rotated = await query(db.url, `select * from pii.vault_rotate_kek('external')`, [], { next: kek1 });
    expect(rotated).toEqual([{ kek_location: 'external', rewrapped_keys: '3' }]);

    const [held] = await query(db.url, `select kek, encode(kek_check, 'hex') as kek_check from pii_internal.vault_kek`);
    expect(held).toEqual({ kek: null, kek_check: kekCheck(kek1) });
    const after = await query(db.url, 'select subject_hash, wrapped_key from pii_internal.vault_keys order by 1');
    expect(after.map((k) => k.subject_hash)).toEqual(before.map((k) => k.subject_hash));
    after.forEach((k, i) => expect(k.wrapped_key).not.toEqual(before[i]!.wrapped_key));

    const audit = await query(db.url, `select details from pii.audit where action = 'vault_rotate_kek'`);
    expect(audit).toEqual([{ details: { from: 'embedded', to: 'external', data_keys: 3 } }]);
  });

  it('pii.detokenize needs the KEK: 55000 without it, 28000 with a wrong one; with it the same tokens give the same values', async () => {
    await expectPgError(detokenize(db.url, [1]), '55000', /held outside the database and this session has none/);
    await expectPgError(detokenize(db.url, [1], randomBytes(32).toString('hex')), '28000', /does not open this vault/);
    await expectPgError(detokenize(db.url, [1], 'not-hex'), '22023', /lethe\.vault_kek must be 64 hexadecimal digits/);
    expect(await detokenize(db.url, [1, 2, 3], kek1)).toEqual([...resolved(1), ...resolved(2), ...resolved(3)]);
  });

  it('pii.tokenize needs the KEK too, and wraps new subjects keys under it', async () => {
    await expectPgError(
      query(db.url, `select pii.tokenize('4', 'email', 'dee@example.com')`),
      '55000',
      /held outside the database/,
    );
    const [row] = await query(db.url, `select pii.tokenize('4', 'email', 'dee@example.com') as t`, [], {
      current: kek1,
    });
    const back = await query(db.url, `select value, status from pii.detokenize(array[$1], 'p')`, [row.t], {
      current: kek1,
    });
    expect(back).toEqual([{ value: 'dee@example.com', status: 'ok' }]);
  });
});

describe('a backup restored into a new database, with the KEK outside the database', () => {
  let beforeErasure: Backup;
  let afterErasure: Backup;

  it('erasure needs no KEK: the erased subject answers erased at once', async () => {
    beforeErasure = await takeBackup('before');
    await query(db.url, `select * from pii.erase_subjects(array['2'])`);
    expect(await detokenize(db.url, [1, 2], kek1)).toEqual([...resolved(1), ...erased]);
    afterErasure = await takeBackup('after');
  });

  it('cannot decrypt without the KEK, holds no KEK, decrypts with it, and the erased subject stays erased', async () => {
    const restored = await afterErasure.restore(`${db.name}_restored_after`);
    await expectPgError(detokenize(restored, [1]), '55000', /held outside the database/);
    // A batch with nothing to decrypt (erased and unknown tokens only) needs no KEK.
    expect(await detokenize(restored, [2])).toEqual(erased);
    const dump = await dumpDatabaseText(restored);
    expect(dump).toContain('vault_entries');
    for (const secret of [kek1, VALUES[1].email, VALUES[2].email]) expect(dump).not.toContain(secret);
    expect(await detokenize(restored, [1, 2, 3], kek1)).toEqual([...resolved(1), ...erased, ...resolved(3)]);
  });

  it('a KEK rotated away opens nothing: neither the live database nor a backup from before the rotation', async () => {
    const rotated = await query(db.url, `select * from pii.vault_rotate_kek()`, [], { current: kek1, next: kek2 });
    expect(rotated).toEqual([{ kek_location: 'external', rewrapped_keys: '3' }]);
    await expectPgError(detokenize(db.url, [1], kek1), '28000', /does not open this vault/);
    expect(await detokenize(db.url, [1, 2, 3], kek2)).toEqual([...resolved(1), ...erased, ...resolved(3)]);

    // The backup from before the erasure still holds subject 2's data key, wrapped under
    // the KEK of its time: only that KEK opens it (docs/vault.md: destroy rotated KEKs
    // once the backups they open have expired).
    const restored = await beforeErasure.restore(`${db.name}_restored_before`);
    await expectPgError(detokenize(restored, [2], kek2), '28000', /does not open this vault/);
    expect(await detokenize(restored, [2], kek1)).toEqual(resolved(2));
  });

  it('rotates back into the database: no session needs a KEK any more', async () => {
    const rotated = await query(db.url, `select * from pii.vault_rotate_kek('embedded')`, [], { current: kek2 });
    expect(rotated).toEqual([{ kek_location: 'embedded', rewrapped_keys: '3' }]);
    expect(await detokenize(db.url, [1, 3])).toEqual([...resolved(1), ...resolved(3)]);
    const audit = await query(db.url, `select details from pii.audit where action = 'vault_rotate_kek' order by id`);
    expect(audit.map((a) => a.details)).toEqual([
      { from: 'embedded', to: 'external', data_keys: 3 },
      { from: 'external', to: 'external', data_keys: 3 },
      { from: 'external', to: 'embedded', data_keys: 3 },
    ]);
  });

  it('refuses a bad location, an external rotation without the new KEK, and the current KEK as the new one', async () => {
    await expectPgError(query(db.url, `select * from pii.vault_rotate_kek('cloud')`), '22023', /embedded or external/);
    await expectPgError(
      query(db.url, `select * from pii.vault_rotate_kek('external')`),
      '55000',
      /needs the new KEK in this session/,
    );
    await query(db.url, `select * from pii.vault_rotate_kek('external')`, [], { next: kek1 });
    await expectPgError(
      query(db.url, `select * from pii.vault_rotate_kek()`, [], { current: kek1, next: kek1 }),
      '22023',
      /the new KEK is the current one/,
    );
    const [n] = await query(db.url, `select count(*)::int as n from pii.audit where action = 'vault_rotate_kek'`);
    expect(n.n).toBe(4);
  });
});
