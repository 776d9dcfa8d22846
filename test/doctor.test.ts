// `lethe doctor` as a real process against real roles: a superuser install (everything
// ok), a database without Lethe, a non-superuser install (no event triggers: a warning, not
// a failure), an owner role that lost a privilege on a registered table (exit 1 with the
// GRANT to run), and a login role that may not read Lethe's catalog.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { collect, type ProcessResult } from './helpers/collect.js';
import { loadFixture } from './helpers/fixtures.js';
import { runSql } from '../src/db/runSql.js';
import { closeToOtherLogins, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const BIN = fileURLToPath(new URL('../bin/lethe.js', import.meta.url));
const suffix = randomBytes(3).toString('hex');
const installer = `lethe_doctor_installer_${suffix}`;
const outsider = `lethe_doctor_outsider_${suffix}`;
const tableOwner = `lethe_doctor_app_owner_${suffix}`;
const password = randomBytes(12).toString('hex');
const scratch: string[] = [];
let db: TestDatabase;

function lethe(args: string[]): Promise<ProcessResult> {
  const { DATABASE_URL: _ignored, ...env } = process.env;
  return collect(spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function doctor(url: string): Promise<{ code: number | null; checks: any[]; stderr: string }> {
  const r = await lethe(['doctor', '--database-url', url, '--json']);
  return { code: r.code, checks: r.stdout ? JSON.parse(r.stdout).checks : [], stderr: r.stderr };
}

async function scratchDatabase(owner?: string): Promise<string> {
  const name = `lethe_doctor_${randomBytes(4).toString('hex')}`;
  await runSql(inject('adminUrl'), `create database ${name}${owner ? ` owner ${owner}` : ''}`);
  scratch.push(name);
  await closeToOtherLogins(name, [installer, outsider]);
  return withDatabaseName(inject('adminUrl'), name);
}

const byCheck = (checks: any[], check: string) => checks.filter((c) => c.check === check);

beforeAll(async () => {
  db = await createTestDatabase('doctor');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  await db.query(`create role ${installer} login nosuperuser password '${password}'`);
  await db.query(`create role ${outsider} login nosuperuser password '${password}'`);
  await db.query(`create role ${tableOwner} nologin`);
  await closeToOtherLogins(db.name, [installer, outsider]);
});
afterAll(async () => {
  for (const name of scratch) await runSql(inject('adminUrl'), `drop database if exists ${name} with (force)`);
  await db?.query(`drop owned by ${installer}, ${outsider}`).catch(() => undefined);
  await db?.query(`drop role if exists ${installer}`).catch(() => undefined);
  await db?.query(`drop role if exists ${outsider}`).catch(() => undefined);
  await db?.query(`drop role if exists ${tableOwner}`).catch(() => undefined);
  await db?.drop();
});

describe('lethe doctor', () => {
  it('passes a superuser install: server, hashing, roles, install, privileges and event triggers ok', async () => {
    const { code, checks, stderr } = await doctor(db.url);
    expect(code, stderr).toBe(0);
    const version = (await db.query(`select current_setting('server_version') as v`)).rows[0].v;
    expect(byCheck(checks, 'server')).toEqual([{ check: 'server', status: 'ok', detail: `PostgreSQL ${version}` }]);
    for (const check of ['hashing', 'roles', 'install', 'privileges', 'event triggers']) {
      expect(
        byCheck(checks, check).map((c) => c.status),
        check,
      ).toEqual(['ok']);
    }
    expect(byCheck(checks, 'install')[0].detail).toMatch(/^lethe 0\.1\.0: \d+ migrations and \d+ code files applied$/);
    expect(byCheck(checks, 'privileges')[0].detail).toMatch(/can act for the owners of all 6 registered table\(s\)/);
    expect(checks.some((c) => c.status === 'fail')).toBe(false);
  });

  it('prints each check with its fix as text', async () => {
    const r = await lethe(['doctor', '--database-url', db.url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok +server +PostgreSQL \d+/m);
    expect(r.stdout).toMatch(/Lethe can run here\.\n$/);
  });

  it('fails when the database runs other code than this package ships, until lethe migrate', async () => {
    await db.query(`update pii_internal.code_files set sha256 = repeat('0', 64) where name = '30_registry.sql'`);
    const stale = await doctor(db.url);
    expect(stale.code).toBe(1);
    expect(byCheck(stale.checks, 'install')).toEqual([
      {
        check: 'install',
        status: 'fail',
        detail: 'lethe 0.1.0 has 0 migration(s) not applied and code the database does not run',
        fix: 'npx lethe migrate --database-url …',
      },
    ]);
    expect((await lethe(['migrate', '--database-url', db.url])).code).toBe(0);
    expect((await doctor(db.url)).code).toBe(0);
  });

  it('fails on a database without Lethe and says to run lethe migrate', async () => {
    const { code, checks } = await doctor(await scratchDatabase());
    expect(code).toBe(1);
    expect(byCheck(checks, 'install')).toEqual([
      expect.objectContaining({ status: 'fail', fix: expect.stringContaining('lethe migrate') }),
    ]);
  });

  it("warns while erased subjects' key ids wait in the key-store shred queue for more than a few minutes", async () => {
    const vault = await createTestDatabase('doctor_vault');
    try {
      // Roles are cluster-wide: masked readers that other test files create (with escapes, on
      // purpose) would be this database's security_lint errors if they could connect to it.
      await closeToOtherLogins(vault.name);
      await loadFixture(vault, 'vault_signup.sql');
      expect(byCheck((await doctor(vault.url)).checks, 'vault')).toEqual([
        {
          check: 'vault',
          status: 'ok',
          detail: 'data keys in this database (crypto-shredding in the erasure transaction)',
        },
      ]);
      // Bound to a key store (by id: doctor reads only this database); two subjects get key ids
      // and are erased, so the shredding trigger queues their ids in the erasure's transaction.
      await vault.query(`select pii.vault_use_key_store(gen_random_uuid())`);
      const { rows } = await vault.query<{ key_id: string }>(
        `select key_id from pii.vault_key_ids(array['1', '2', '3']) order by ordinality`,
      );
      await vault.query(`select count(*) from pii.erase_subjects(array['1', '2'])`);
      const queued = await vault.query<{ key_id: string }>(
        `select key_id from pii.vault_pending_shreds() order by key_id`,
      );
      expect(queued.rows.map((r) => r.key_id)).toEqual([rows[0]!.key_id, rows[1]!.key_id].sort());
      // Just queued: the worker drains the queue every minute, nothing to say yet.
      const fresh = await doctor(vault.url);
      expect(fresh.checks.filter((c) => c.status === 'fail')).toEqual([]);
      expect(fresh.code, fresh.stderr).toBe(0);
      expect(byCheck(fresh.checks, 'vault')).toEqual([
        expect.objectContaining({
          status: 'ok',
          detail: expect.stringMatching(/^data keys in a separate key store; /),
        }),
      ]);
      // Ten minutes later, no worker having drained it: a warning with the count and the fix.
      await vault.query(`update pii_internal.vault_shred_queue set queued_at = now() - interval '10 minutes'`);
      const stale = await doctor(vault.url);
      expect(stale.code, stale.stderr).toBe(0);
      const [check] = byCheck(stale.checks, 'vault');
      expect(check).toEqual({
        check: 'vault',
        status: 'warn',
        detail: expect.stringMatching(
          /^2 data key\(s\) of erased subjects queued for the key store to destroy since \S+Z \(more than 5 minutes\): the keys still exist in the key store/,
        ),
        fix: expect.stringContaining('lethe key-store shred'),
      });
      // Key ids only: never a subject key or hash.
      expect(JSON.stringify(check)).not.toMatch(/[0-9a-f]{64}/);
      // The store confirmed: the queue is empty, the check is ok again.
      await vault.query(`select pii.vault_confirm_shreds($1::uuid[])`, [queued.rows.map((r) => r.key_id)]);
      expect(byCheck((await doctor(vault.url)).checks, 'vault')).toEqual([expect.objectContaining({ status: 'ok' })]);
    } finally {
      await vault.drop();
    }
  });

  describe('a non-superuser install (managed services)', () => {
    let installerUrl: string;
    let adminUrl: string;

    beforeAll(async () => {
      adminUrl = await scratchDatabase(installer);
      installerUrl = connectAs(adminUrl, installer, password);
      // The group roles are cluster-wide and exist already (the template's install made them):
      // the installer needs ADMIN on the two that Lethe grants to pii_admin.
      await db.query(`grant pii_operator, pii_auditor to ${installer} with admin option`);
      const m = await lethe(['migrate', '--database-url', installerUrl]);
      expect(m.code, m.stderr).toBe(0);
      // An application table owned by another role, whose rights Lethe's owner may use (a member).
      await runSql(
        adminUrl,
        `create schema app;
         create table app.customers (id int primary key, email text);
         alter table app.customers owner to ${tableOwner};
         grant usage on schema app to ${tableOwner}, ${installer};
         grant ${tableOwner} to ${installer};`,
      );
      await runSql(
        installerUrl,
        `select pii.register_subject_table('app.customers', 'id');
         select pii.register_column('app.customers', 'email', 'null', 'email', 'contact');`,
      );
    });

    it('warns that event triggers are missing (no superuser) and still exits 0', async () => {
      const { code, checks, stderr } = await doctor(installerUrl);
      expect(code, JSON.stringify(checks)).toBe(0);
      expect(stderr).toBe('');
      expect(byCheck(checks, 'event triggers')).toEqual([
        expect.objectContaining({
          status: 'warn',
          detail: expect.stringMatching(/^5 of 5 not installed; .* is not a superuser/),
          fix: expect.stringContaining('pii.apply_masking()'),
        }),
      ]);
      expect(byCheck(checks, 'privileges')).toEqual([expect.objectContaining({ status: 'ok' })]);
    });

    it('fails when a table owner lost UPDATE on its registered table, with the GRANT to run', async () => {
      await runSql(adminUrl, `revoke update on app.customers from ${tableOwner}`);
      const { code, checks } = await doctor(installerUrl);
      expect(code).toBe(1);
      expect(byCheck(checks, 'privileges')).toEqual([
        {
          check: 'privileges',
          status: 'fail',
          detail: `missing on 1 registered table(s): app.customers lacks update (app.customers)`,
          fix: `grant update on app.customers to ${tableOwner};`,
        },
      ]);

      await runSql(adminUrl, `grant update on app.customers to ${tableOwner}`);
      expect(byCheck((await doctor(installerUrl)).checks, 'privileges')).toEqual([
        expect.objectContaining({ status: 'ok' }),
      ]);
    });

    it('fails when Lethe’s owner role may not act for a table’s owner, with the GRANT to run', async () => {
      await runSql(adminUrl, `revoke ${tableOwner} from ${installer}`);
      const { code, checks } = await doctor(installerUrl);
      expect(code).toBe(1);
      expect(byCheck(checks, 'privileges')).toEqual([
        expect.objectContaining({
          status: 'fail',
          fix: expect.stringContaining(`grant ${tableOwner} to ${installer};`),
        }),
      ]);
      await runSql(adminUrl, `grant ${tableOwner} to ${installer}`);
      expect(byCheck((await doctor(installerUrl)).checks, 'privileges')).toEqual([
        expect.objectContaining({ status: 'ok' }),
      ]);
    });

    it('tells a login role outside Lethe’s groups which checks it may not run', async () => {
      const { code, checks, stderr } = await doctor(connectAs(adminUrl, outsider, password));
      expect(stderr).toBe('');
      expect(code).toBe(0);
      for (const check of ['privileges', 'lint', 'security_lint']) {
        expect(byCheck(checks, check), check).toEqual([
          expect.objectContaining({ status: 'warn', detail: expect.stringContaining('permission denied') }),
        ]);
      }
    });
  });
});
