// The vault with its data keys in a separate key store (a second database), on a cluster of
// its own with log_statement = all: the application database holds key ids and ciphertext
// only; tokenize and detokenize go through the TypeScript layer (createLethe({ keyStore }),
// lethe pii-api --key-store-url); erasure makes the tokens answer erased at once and queues
// the key ids, and the worker has the store destroy the keys; a copy of the database taken
// before the erasure, restored, cannot decrypt the erased subject with the live key store;
// no value and no data key is in a dump of the database or in any PostgreSQL log line.
import type { ChildProcess } from 'node:child_process';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLethe, type Lethe } from '../src/api/createLethe.js';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../src/db/embeddedPostgres.js';
import { migrate } from '../src/db/migrate.js';
import { runSql } from '../src/db/runSql.js';
import { encryptValue } from '../src/vault/aes.js';
import { initKeyStore, PostgresKeyStore } from '../src/vault/keyStore.js';
import { runWorker } from '../src/worker/runWorker.js';
import { dumpDatabaseText } from './helpers/dumpDatabase.js';
import { expectPgError } from './helpers/fixtures.js';
import { runLethe, startPiiApi } from './helpers/letheProcess.js';
import { connectAs } from './helpers/testDatabase.js';

const VALUES = {
  1: { email: 'Ines.Keystore@example.com', phone: '+49 30 901820 11' },
  2: { email: 'omar.keystore@example.net', phone: '+49 30 901820 22' },
  3: { email: 'yuki.keystore@example.org', phone: '+49 30 901820 33' },
};
type Id = keyof typeof VALUES;
const ids = [1, 2, 3] as const;

let cluster: EmbeddedPostgresHandle;
const pgLog: string[] = [];
let appUrl: string;
let storeUrl: string;
let storeId: string;
let admin: pg.Client;
let operator: Lethe;
let dispatcher: Lethe;
let store: PostgresKeyStore;
const password = randomBytes(12).toString('hex');
const tokens: Record<number, { email: string; phone: string }> = {};

/** A client whose connection the backup step may terminate without crashing the run. */
async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  client.on('error', () => {});
  await client.connect();
  return client;
}
const as = (role: string) => connectAs(appUrl, role, password);
const resolved = (id: Id) => [
  { token: tokens[id]!.email, kind: 'email', value: VALUES[id].email, status: 'ok' },
  { token: tokens[id]!.phone, kind: 'phone', value: VALUES[id].phone, status: 'ok' },
];
/** Erased: gone from the vault (kind unknown), or, in the backup, there but its key destroyed. */
const erased = (id: Id, inBackup = false) => [
  { token: tokens[id]!.email, kind: inBackup ? 'email' : null, value: null, status: 'erased' },
  { token: tokens[id]!.phone, kind: inBackup ? 'phone' : null, value: null, status: 'erased' },
];
const tokensOf = (...which: Id[]) => which.flatMap((id) => [tokens[id]!.email, tokens[id]!.phone]);
let storeAdmin: pg.Client;
const storedKeys = async () =>
  (await storeAdmin.query('select count(*)::int as n from lethe_key_store.data_keys')).rows[0].n as number;

beforeAll(async () => {
  cluster = await startEmbeddedPostgres({ log: (line) => pgLog.push(line) });
  await runSql(cluster.url, 'create database vault_app');
  await runSql(cluster.url, 'create database vault_keys');
  appUrl = withDatabaseName(cluster.url, 'vault_app');
  storeUrl = withDatabaseName(cluster.url, 'vault_keys');
  for (const db of ['vault_app', 'vault_keys'])
    await runSql(cluster.url, `alter database ${db} set log_statement = 'all'`);
  await migrate(appUrl);
  admin = await connect(appUrl);
  await admin.query(`
    create table public.members (id bigint primary key, email_token text, phone_token text);
    select pii.register_subject_table('public.members', 'id');
    select pii.register_column('public.members', 'email_token', 'null', 'clear', 'token');
    select pii.register_column('public.members', 'phone_token', 'null', 'clear', 'token');
    select pii.set_token_kind('email', deterministic => true, normaliser => 'email');
    create role signup login password '${password}'; grant pii_operator to signup;
    grant insert, select on public.members to signup;
    create role sender login password '${password}'; grant pii_dispatcher to sender;`);
  storeId = await initKeyStore(storeUrl);
  storeAdmin = await connect(storeUrl);
  store = new PostgresKeyStore(storeUrl);
  operator = createLethe({ connectionString: as('signup'), keyStore: store });
  dispatcher = createLethe({ connectionString: as('sender'), keyStore: store });
}, 120_000);

afterAll(async () => {
  await operator?.close();
  await dispatcher?.close();
  await store?.close();
  await admin?.end();
  await storeAdmin?.end();
  await cluster?.stop();
});

describe('binding the vault to a key store', () => {
  it('lethe key-store init is idempotent: the same store id again', async () => {
    const r = await runLethe(['key-store', 'init', '--json'], { LETHE_KEY_STORE_URL: storeUrl, DATABASE_URL: appUrl });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ storeId });
  });

  it('before binding, the TypeScript layer refuses a key store the vault does not use (55000)', async () => {
    await expectPgError(
      operator.tokenize([{ subjectKey: '1', kind: 'email', value: VALUES[1].email }]),
      '55000',
      /keeps its data keys in the database, not in a key store/,
    );
  });

  it('pii.vault_use_key_store is pii_admin only (42501); lethe key-store bind binds, again is a no-op, another store 55000', async () => {
    await expectPgError(
      sql`select pii.vault_use_key_store(${storeId}::uuid)`.execute(operator.db),
      '42501',
      /permission denied/,
    );
    for (let i = 0; i < 2; i++) {
      const r = await runLethe(['key-store', 'bind'], { LETHE_KEY_STORE_URL: storeUrl, DATABASE_URL: appUrl });
      expect(r.code, r.stderr).toBe(0);
    }
    await expectPgError(
      admin.query(`select pii.vault_use_key_store(gen_random_uuid())`),
      '55000',
      /bound to another key store/,
    );
    expect((await admin.query('select * from pii.vault_key_location()')).rows).toEqual([
      { location: 'key_store', store_id: storeId },
    ]);
    expect(
      (await admin.query(`select count(*)::int as n from pii.audit where action = 'vault_use_key_store'`)).rows,
    ).toEqual([{ n: 1 }]);
  });
});

describe('tokenize and detokenize with the key store', () => {
  it('tokenize: tokens as with the embedded vault; the database holds a key id per subject and ciphertext, no key', async () => {
    const inputs = ids.flatMap((id) => [
      { subjectKey: String(id), kind: 'email', value: VALUES[id].email },
      { subjectKey: String(id), kind: 'phone', value: VALUES[id].phone },
    ]);
    const issued = await operator.tokenize(inputs);
    ids.forEach((id, i) => (tokens[id] = { email: issued[2 * i]!, phone: issued[2 * i + 1]! }));
    expect(issued.every((t) => /^tok_[0-9a-f]{32}$/.test(t ?? ''))).toBe(true);
    for (const id of ids)
      await admin.query('insert into public.members values ($1, $2, $3)', [id, tokens[id]!.email, tokens[id]!.phone]);

    const keys = await admin.query('select wrapped_key, key_id from pii_internal.vault_keys');
    expect(keys.rows).toHaveLength(3);
    expect(keys.rows.every((k) => k.wrapped_key === null && /^[0-9a-f-]{36}$/.test(k.key_id))).toBe(true);
    expect(await storedKeys()).toBe(3);
  });

  it("the ciphertext is pgcrypto's format (IV || AES-256-CBC/PKCS) under the store's key of that subject", async () => {
    const { rows } = await admin.query(
      `select e.ciphertext, k.key_id from pii_internal.vault_entries e
       join pii_internal.vault_keys k using (subject_hash) where e.token = $1`,
      [tokens[2]!.phone],
    );
    const key = (await store.dataKeys([rows[0].key_id])).get(rows[0].key_id)!;
    const decipher = createDecipheriv('aes-256-cbc', key, rows[0].ciphertext.subarray(0, 16));
    const plain = Buffer.concat([decipher.update(rows[0].ciphertext.subarray(16)), decipher.final()]).toString();
    expect(plain).toBe(VALUES[2].phone);
    // And pgcrypto opens what Node writes (a throwaway key and value: a real one bound here
    // would be in the log this file greps).
    const throwaway = randomBytes(32);
    const { rows: opened } = await admin.query(
      `select convert_from(pii_crypto.decrypt_iv(substr($1::bytea, 17), $2::bytea, substr($1::bytea, 1, 16), 'aes-cbc/pad:pkcs'), 'UTF8') as v`,
      [encryptValue(throwaway, 'Zoë, 18 chars…'), throwaway],
    );
    expect(opened[0].v).toBe('Zoë, 18 chars…');
  });

  it('a deterministic kind gives the same token for the same normalised value; the subject keeps its one key', async () => {
    const [again] = await operator.tokenize([{ subjectKey: '1', kind: 'email', value: ' ines.keystore@EXAMPLE.com ' }]);
    expect(again).toBe(tokens[1]!.email);
    expect(await storedKeys()).toBe(3);
  });

  it('pii.tokenize and pii.detokenize refuse a vault whose keys are in a key store (55000, with the way)', async () => {
    await expectPgError(admin.query(`select pii.tokenize('4', 'phone', '+1 555 0100')`), '55000', /separate key store/);
    await expectPgError(
      admin.query(`select * from pii.detokenize($1, 'campaign:1')`, [tokensOf(1)]),
      '55000',
      /separate key store/,
    );
  });

  it('detokenize as the dispatcher: values in request order, unknown tokens unknown, exactly one audit row', async () => {
    const before = (await admin.query(`select count(*)::int as n from pii.audit where action = 'detokenize'`)).rows[0]
      .n;
    const forged = `tok_${'0'.repeat(32)}`;
    expect(await dispatcher.detokenize([...tokensOf(3, 1), forged], 'campaign:4711')).toEqual([
      ...resolved(3),
      ...resolved(1),
      { token: forged, kind: null, value: null, status: 'unknown' },
    ]);
    const audit = await admin.query(
      `select details from pii.audit where action = 'detokenize' order by id desc limit 1`,
    );
    expect((await admin.query(`select count(*)::int as n from pii.audit where action = 'detokenize'`)).rows[0].n).toBe(
      before + 1,
    );
    expect(audit.rows[0].details).toMatchObject({ tokens: 5, purpose: 'campaign:4711', role: 'sender' });
  });

  it('the operator may not detokenize and the dispatcher may not tokenize (42501)', async () => {
    await expectPgError(operator.detokenize(tokensOf(1), 'campaign:1'), '42501', /permission denied/);
    await expectPgError(
      dispatcher.tokenize([{ subjectKey: '9', kind: 'phone', value: '+1 555 0199' }]),
      '42501',
      /permission denied/,
    );
  });

  it('pii.store_tokens refuses a key id that is not its subject (22023) and bad ciphertext (22023); nothing stored', async () => {
    const entries = async () =>
      (await admin.query('select count(*)::int as n from pii_internal.vault_entries')).rows[0].n;
    const n = await entries();
    const { rows } = await admin.query(`select key_id from pii_internal.vault_keys limit 1`);
    await expectPgError(
      admin.query(`select * from pii.store_tokens(array['1', '2'], array['phone', 'phone'], $1::uuid[], $2::bytea[])`, [
        [rows[0].key_id, rows[0].key_id],
        [randomBytes(32), randomBytes(32)],
      ]),
      '22023',
      /key id #\d is not the data key of its subject/,
    );
    await expectPgError(
      admin.query(`select * from pii.store_tokens(array['1'], array['phone'], $1::uuid[], $2::bytea[])`, [
        [rows[0].key_id],
        [randomBytes(20)],
      ]),
      '22023',
      /ciphertext #1 is not a 16-byte IV/,
    );
    expect(await entries()).toBe(n);
  });
  it('a ciphertext the operator stored that does not decrypt answers unknown; the rest of the batch resolves', async () => {
    const signup = await connect(as('signup'));
    try {
      const { rows } = await signup.query(`select key_id from pii.vault_key_ids(array['2'])`);
      const key = (await store.dataKeys([rows[0].key_id])).get(rows[0].key_id)!;
      // Right shape, wrong key: random blocks whose padding does not check out under the subject's key.
      const undecryptable = (() => {
        for (;;) {
          const candidate = randomBytes(32);
          const decipher = createDecipheriv('aes-256-cbc', key, candidate.subarray(0, 16));
          try {
            decipher.update(candidate.subarray(16));
            decipher.final();
          } catch {
            return candidate;
          }
        }
      })();
      const stored = await signup.query(
        `select token from pii.store_tokens(array['2'], array['phone'], $1::uuid[], $2::bytea[])`,
        [[rows[0].key_id], [undecryptable]],
      );
      const bad = stored.rows[0].token as string;
      expect(await dispatcher.detokenize([bad, tokens[1]!.email], 'campaign:4712')).toEqual([
        { token: bad, kind: 'phone', value: null, status: 'unknown' },
        resolved(1)[0],
      ]);
    } finally {
      await signup.end();
    }
  });
});

describe('erasure with the key store', () => {
  let backupUrl: string;

  it('a copy of the database taken before the erasure (the backup)', async () => {
    await runSql(
      cluster.url,
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = 'vault_app' and pid <> pg_backend_pid()`,
    );
    await admin.end().catch(() => undefined);
    await runSql(cluster.url, 'create database vault_app_backup template vault_app');
    backupUrl = withDatabaseName(cluster.url, 'vault_app_backup');
    admin = await connect(appUrl);
  });

  it('erasing subject 1: its tokens answer erased at commit, its key id is queued, verify_erasure is empty', async () => {
    await admin.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await dispatcher.detokenize(tokensOf(1, 2), 'campaign:4712')).toEqual([...erased(1), ...resolved(2)]);
    expect((await admin.query('select count(*)::int as n from pii_internal.vault_shred_queue')).rows[0].n).toBe(1);
    expect((await admin.query(`select * from pii.verify_erasure_keys(array['1'])`)).rows).toEqual([]);
  });

  it("the worker has the key store destroy the erased subject's key (lethe_vault_shred), audited with a count", async () => {
    expect(await storedKeys()).toBe(3);
    const worker = await runWorker({ connectionString: appUrl, keyStore: store, crontab: '', log: () => {} });
    await worker.stop();
    expect(await storedKeys()).toBe(2);
    expect((await admin.query('select count(*)::int as n from pii_internal.vault_shred_queue')).rows[0].n).toBe(0);
    expect((await admin.query(`select details from pii.audit where action = 'vault_shred'`)).rows).toEqual([
      { details: { data_keys: 1 } },
    ]);
  });

  it('the backup, restored, cannot decrypt the erased subject with the live key store; the others resolve', async () => {
    await runSql(backupUrl, `grant connect on database vault_app_backup to sender`);
    const restored = createLethe({ connectionString: connectAs(backupUrl, 'sender', password), keyStore: store });
    try {
      // The entries and the key id of subject 1 are in the backup; the key is not in the store.
      expect(await restored.detokenize(tokensOf(1, 3), 'restore:check')).toEqual([...erased(1, true), ...resolved(3)]);
    } finally {
      await restored.close();
    }
  });

  it('lethe pii-api --key-store-url serves values and erased tokens over HTTP, and logs none', async () => {
    const created = await runLethe(['pii-api', 'keys', 'create', 'sender-platform', '--json'], {
      DATABASE_URL: appUrl,
    });
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout).key as string;
    let output = '';
    let server: ChildProcess | undefined;
    try {
      const started = await startPiiApi(
        ['--key-store-url', storeUrl],
        { DATABASE_URL: as('sender') },
        (d) => (output += d),
      );
      server = started.child;
      const res = await fetch(`${started.base}/v1/pii/lookup`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tokens: tokensOf(2, 1), purpose: 'campaign:4713' }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ results: [...resolved(2), ...erased(1)] });
    } finally {
      server?.kill('SIGKILL');
    }
    for (const v of Object.values(VALUES)) {
      expect(output).not.toContain(v.email);
      expect(output).not.toContain(v.phone);
    }
  });

  it('no value in a dump of the database; no value and no data key in any PostgreSQL log line at log_statement = all', async () => {
    const dump = await dumpDatabaseText(appUrl);
    const log = pgLog.join('\n');
    expect(log).toMatch(/statement: .*lethe_key_store\.data_keys/);
    const keys = await store.dataKeys(
      (await admin.query<{ key_id: string }>('select key_id from pii_internal.vault_keys')).rows.map((r) => r.key_id),
    );
    expect(keys.size).toBe(2);
    for (const k of keys.values()) {
      expect(log).not.toContain(k.toString('hex'));
      expect(dump).not.toContain(k.toString('hex'));
    }
    // The values of random kinds never reach the database; the signup here sends none either.
    for (const id of [2, 3] as const) {
      expect(dump).not.toContain(VALUES[id].phone);
      expect(dump).not.toContain(VALUES[id].email);
      expect(log).not.toContain(VALUES[id].phone);
    }
  });
});
