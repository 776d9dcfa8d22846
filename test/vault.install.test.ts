// Installing the vault where pgcrypto already exists in a schema of the database's own
// (Supabase and others keep extensions in `extensions`): Lethe uses that one, named
// explicitly, never through search_path, and creates no second copy.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate } from '../src/db/migrate.js';
import { admin } from './helpers/testDatabase.js';

const name = `lethe_test_vault_install_${process.pid}`;
let client: pg.Client;

beforeAll(async () => {
  await admin(`create database ${name}`);
  const url = withDatabaseName(inject('adminUrl'), name);
  const setup = new pg.Client(url);
  await setup.connect();
  await setup.query('create schema extensions; create extension pgcrypto schema extensions');
  await setup.end();
  await migrate(url);
  client = new pg.Client(url);
  await client.connect();
  await client.query(`create table public.people (id bigint primary key);
                      select pii.register_subject_table('public.people', 'id')`);
}, 120_000);

afterAll(async () => {
  await client?.end();
  await admin(`drop database if exists ${name} with (force)`);
});

describe('vault install with pgcrypto in another schema', () => {
  it('uses the existing pgcrypto and creates no schema of its own', async () => {
    const { rows } = await client.query(
      `select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pgcrypto'`,
    );
    expect(rows).toEqual([{ nspname: 'extensions' }]);
    expect((await client.query(`select count(*) as n from pg_namespace where nspname = 'pii_crypto'`)).rows[0].n).toBe(
      '0',
    );
    const body = (await client.query(`select prosrc from pg_proc where oid = 'pii.detokenize'::regproc`)).rows[0]
      .prosrc;
    expect(body).toContain('extensions.decrypt_iv(');
  });

  it('tokenizes and detokenizes with a search_path that does not reach pgcrypto', async () => {
    await client.query('set search_path = pg_catalog');
    const { rows } = await client.query(`select pii.tokenize('7', 'email', 'x@example.com') as t`);
    const out = await client.query(`select value, status from pii.detokenize(array[$1], 'test')`, [rows[0].t]);
    expect(out.rows).toEqual([{ value: 'x@example.com', status: 'ok' }]);
  });
});
