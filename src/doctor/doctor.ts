// `lethe doctor`: can Lethe run here, and what is in the way? Read-only checks of the
// server, the connecting role and the install, each with the fix to apply. Every check
// reads the catalog (or calls Lethe's own lint functions); none changes anything.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { evidenceChecks } from './evidence.js';
import { CODE_TABLE, MIGRATIONS_TABLE, packageRoot, readCode, readMigrations } from '../db/sqlFiles.js';
import { GROUP_ROLES } from '../db/groupRoles.js';

/** fail: Lethe cannot work (exit 1); warn: works with a limitation; info: a notice. */
export type CheckStatus = 'ok' | 'info' | 'warn' | 'fail';

export interface DoctorCheck {
  /** What was checked: `server`, `roles`, `privileges`, `lint`, … */
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to run or change, when status is not ok. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

/**
 * Key ids queued for the key store to destroy longer than this: the worker's lethe_vault_shred
 * task, which drains the queue every minute, is not running (or fails).
 */
export const SHRED_QUEUE_STALE_MINUTES = 5;

/** Majors the test suite runs on (npm run test:matrix). */
const TESTED_MAJORS = [14, 15, 16, 17, 18];
const EVENT_TRIGGERS = [
  'lethe_registry_sql_drop',
  'lethe_guard_partitions',
  'lethe_masking_ddl_start',
  'lethe_masking_ddl_end',
  'lethe_masking_sql_drop',
];

export async function runDoctor(databaseUrl: string): Promise<DoctorReport> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'lethe-doctor' });
  client.on('error', () => {});
  await client.connect();
  try {
    const checks: DoctorCheck[] = [];
    checks.push(await serverVersion(client), await hashing(client), await roles(client));
    const installed = await installState(client);
    checks.push(installed.check);
    if (installed.present) {
      checks.push(
        await tablePrivileges(client),
        await eventTriggers(client),
        ...(await lintFindings(
          client,
          'lint',
          "select severity, concat_ws('.', table_name, column_name) as object, problem, hint from pii.lint()",
        )),
        ...(await lintFindings(
          client,
          'security_lint',
          'select severity, object, problem, hint from pii.security_lint()',
        )),
        ...(await evidenceChecks(client).catch((err: unknown) => [cannotRead('evidence', err)])),
        await vaultShredQueue(client),
      );
    } else {
      checks.push(await eventTriggerRights(client));
    }
    return { ok: checks.every((c) => c.status !== 'fail'), checks };
  } finally {
    await client.end();
  }
}

async function one<R extends pg.QueryResultRow>(client: pg.Client, text: string, values?: unknown[]): Promise<R> {
  return (await client.query<R>(text, values)).rows[0]!;
}

async function serverVersion(client: pg.Client): Promise<DoctorCheck> {
  const { num, version } = await one<{ num: number; version: string }>(
    client,
    `select current_setting('server_version_num')::int as num, current_setting('server_version') as version`,
  );
  const major = Math.floor(num / 10000);
  if (major < 14)
    return {
      check: 'server',
      status: 'fail',
      detail: `PostgreSQL ${version}: Lethe needs 14 or newer`,
      fix: 'upgrade the server to PostgreSQL 14-18',
    };
  if (!TESTED_MAJORS.includes(major))
    return {
      check: 'server',
      status: 'warn',
      detail: `PostgreSQL ${version}: newer than the majors Lethe is tested on (${TESTED_MAJORS.join(', ')})`,
    };
  return { check: 'server', status: 'ok', detail: `PostgreSQL ${version}` };
}

// pii.hmac is two pg_catalog.sha256 calls (core since PostgreSQL 11); pgcrypto is not needed.
async function hashing(client: pg.Client): Promise<DoctorCheck> {
  const { sha256, pgcrypto } = await one<{ sha256: boolean; pgcrypto: string | null }>(
    client,
    `select to_regprocedure('pg_catalog.sha256(bytea)') is not null as sha256,
            (select coalesce(installed_version, 'available') from pg_catalog.pg_available_extensions
             where name = 'pgcrypto') as pgcrypto`,
  );
  const crypto = pgcrypto === null ? 'pgcrypto not available (not needed)' : `pgcrypto ${pgcrypto} (not needed)`;
  return sha256
    ? { check: 'hashing', status: 'ok', detail: `pg_catalog.sha256 present; ${crypto}` }
    : { check: 'hashing', status: 'fail', detail: 'pg_catalog.sha256(bytea) is missing', fix: 'use PostgreSQL 14+' };
}

async function roles(client: pg.Client): Promise<DoctorCheck> {
  const { missing } = await one<{ missing: string[] }>(
    client,
    `select coalesce(array_agg(r order by r), '{}') as missing
     from unnest($1::text[]) r where not exists (select from pg_catalog.pg_roles where rolname = r)`,
    [GROUP_ROLES],
  );
  if (missing.length === 0) return { check: 'roles', status: 'ok', detail: `group roles ${GROUP_ROLES.join(', ')}` };
  const me = await one<{ createrole: boolean }>(
    client,
    `select rolcreaterole or rolsuper as createrole from pg_catalog.pg_roles where rolname = current_user`,
  );
  return {
    check: 'roles',
    status: 'fail',
    detail: `missing group roles: ${missing.join(', ')}`,
    fix: me.createrole
      ? 'run lethe migrate (it creates them)'
      : `ask an administrator to run: ${missing.map((r) => `create role ${r} nologin;`).join(' ')} (this role lacks CREATEROLE)`,
  };
}

async function installState(client: pg.Client): Promise<{ present: boolean; check: DoctorCheck }> {
  const version = packageVersion();
  const install = (status: CheckStatus, detail: string, fix?: string) => ({
    present: true,
    check: { check: 'install', status, detail, ...(fix ? { fix } : {}) },
  });
  if (await relationExists(client, 'pii.lethe_migrations'))
    return install(
      'fail',
      'a pre-release Lethe installed by dbmate (pii.lethe_migrations)',
      'drop schemas pii and masked, then npx lethe migrate',
    );
  if (!(await relationExists(client, MIGRATIONS_TABLE)))
    return {
      present: false,
      check: {
        check: 'install',
        status: 'fail',
        detail: `Lethe is not installed in this database (package lethe ${version})`,
        fix: 'npx lethe migrate --database-url …   (or: npx lethe sql | psql -v ON_ERROR_STOP=1 …)',
      },
    };
  let migrations: { version: number; name: string; sha256: string }[];
  let code: Map<string, string>;
  try {
    migrations = (await client.query(`select version, name, sha256 from ${MIGRATIONS_TABLE} order by version`)).rows;
    code = new Map(
      (await client.query(`select name, sha256 from ${CODE_TABLE}`)).rows.map((r) => [
        r.name as string,
        r.sha256 as string,
      ]),
    );
  } catch (err) {
    return { present: true, check: cannotRead('install', err) };
  }
  const shipped = readMigrations();
  const shippedCode = readCode();
  const shippedVersions = new Set(shipped.map((m) => m.version));
  const newer = migrations.filter((m) => !shippedVersions.has(m.version));
  if (newer.length)
    return install(
      'warn',
      `installed by a newer Lethe: migration ${newer.at(-1)!.name} is not part of lethe ${version}`,
      'upgrade the lethe package to the version that installed it',
    );
  const pending = shipped.filter((m) => !migrations.some((r) => r.version === m.version));
  const codeChanged = code.size !== shippedCode.length || shippedCode.some((f) => code.get(f.name) !== f.sha256);
  if (pending.length || codeChanged)
    return install(
      'fail',
      `lethe ${version} has ${pending.length} migration(s) not applied${codeChanged ? ' and code the database does not run' : ''}`,
      'npx lethe migrate --database-url …',
    );
  return install('ok', `lethe ${version}: ${shipped.length} migrations and ${shippedCode.length} code files applied`);
}

/** The catalog, not to_regclass: that raises for a role without USAGE on the schema. */
async function relationExists(client: pg.Client, qualified: string): Promise<boolean> {
  const [schema, name] = qualified.split('.');
  const { exists } = await one<{ exists: boolean }>(
    client,
    `select exists (select from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                    where n.nspname = $1 and c.relname = $2) as exists`,
    [schema, name],
  );
  return exists;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

// Lethe's SECURITY DEFINER functions run as the owner of schema pii: that role needs, on each
// registered table, SELECT (find the subject's rows), UPDATE (anonymize), DELETE (delete
// tables) and TRIGGER (guards, unless off).
async function tablePrivileges(client: pg.Client): Promise<DoctorCheck> {
  // Lethe runs its statements on a table through the table owner's deputy (docs/security.md):
  // its own owner must be a member of each table owner, and the table owner needs what the
  // plan does (an owner can revoke its own privileges); the guards are Lethe's triggers.
  const { owner, ownerIdent } = await one<{ owner: string; ownerIdent: string }>(
    client,
    `select r.rolname as owner, quote_ident(r.rolname) as "ownerIdent"
     from pg_catalog.pg_namespace n join pg_catalog.pg_roles r on r.oid = n.nspowner where n.nspname = 'pii'`,
  );
  let rows: { name: string; tableOwner: string; member: boolean; missing: string[] }[];
  try {
    rows = (
      await client.query<{ name: string; tableOwner: string; member: boolean; missing: string[] }>(
        `select format('%I.%I', n.nspname, c.relname) as name, quote_ident(c.relowner::regrole::text) as "tableOwner",
                pg_has_role($1, c.relowner, 'MEMBER') as member,
                array_remove(array[
                  case when not has_table_privilege(c.relowner, t.relid, 'SELECT') then 'select' end,
                  case when t.on_erase = 'anonymize' and not has_table_privilege(c.relowner, t.relid, 'UPDATE') then 'update' end,
                  case when t.on_erase = 'delete' and not has_table_privilege(c.relowner, t.relid, 'DELETE') then 'delete' end,
                  case when t.guard_mode <> 'off' and not has_table_privilege($1, t.relid, 'TRIGGER') then 'trigger' end
                ], null) as missing
         from pii.tables t
         join pg_catalog.pg_class c on c.oid = t.relid
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         order by 1`,
        [owner],
      )
    ).rows;
  } catch (err) {
    return cannotRead('privileges', err);
  }
  const lacking = rows.filter((r) => r.missing.length || !r.member);
  if (lacking.length === 0)
    return {
      check: 'privileges',
      status: 'ok',
      detail: `${owner} (owner of schema pii) can act for the owners of all ${rows.length} registered table(s)`,
    };
  return {
    check: 'privileges',
    status: 'fail',
    detail: `missing on ${lacking.length} registered table(s): ${lacking
      .map(
        (r) =>
          [
            ...(r.member ? [] : [`${owner} is not a member of its owner ${r.tableOwner}`]),
            ...(r.missing.length ? [`${r.name} lacks ${r.missing.join(', ')}`] : []),
          ].join(', ') + ` (${r.name})`,
      )
      .join('; ')}`,
    fix: lacking
      .flatMap((r) => [
        ...(r.member ? [] : [`grant ${r.tableOwner} to ${ownerIdent};`]),
        ...r.missing.map((m) => `grant ${m} on ${r.name} to ${m === 'trigger' ? ownerIdent : r.tableOwner};`),
      ])
      .join(' '),
  };
}

async function eventTriggers(client: pg.Client): Promise<DoctorCheck> {
  const { present } = await one<{ present: string[] }>(
    client,
    `select coalesce(array_agg(evtname::text order by evtname), '{}') as present
     from pg_catalog.pg_event_trigger where evtname = any($1) and evtenabled <> 'D'`,
    [EVENT_TRIGGERS],
  );
  if (present.length === EVENT_TRIGGERS.length)
    return { check: 'event triggers', status: 'ok', detail: `all ${EVENT_TRIGGERS.length} installed and enabled` };
  const rights = await eventTriggerRights(client);
  return {
    check: 'event triggers',
    status: 'warn',
    detail: `${EVENT_TRIGGERS.length - present.length} of ${EVENT_TRIGGERS.length} not installed; ${rights.detail}`,
    fix:
      rights.status === 'ok'
        ? "run lethe migrate again as this superuser after a fresh install, or keep the manual steps: after DDL on a registered table run select * from pii.apply_masking(); after a new partition, select pii.sync_guards('<table>');"
        : "without a superuser (managed services): after DDL on a registered table run select * from pii.apply_masking(); after creating a partition, select pii.sync_guards('<table>'); after dropping a registered table, select * from pii.lint();",
  };
}

// Creating event triggers needs a superuser; managed services (RDS, Cloud SQL, Azure) give none.
async function eventTriggerRights(client: pg.Client): Promise<DoctorCheck> {
  const { rolsuper, user } = await one<{ rolsuper: boolean; user: string }>(
    client,
    `select rolsuper, current_user as user from pg_catalog.pg_roles where rolname = current_user`,
  );
  return rolsuper
    ? { check: 'event triggers', status: 'ok', detail: `${user} is a superuser and may create event triggers` }
    : {
        check: 'event triggers',
        status: 'warn',
        detail: `${user} is not a superuser: Lethe installs without its event triggers (masked views and guards do not follow DDL by themselves)`,
        fix: 'fine on managed services; after DDL on a registered table run select * from pii.apply_masking();',
      };
}

// With the vault's data keys in a separate key store, erasure queues the erased subjects' key
// ids (pii_internal.vault_shred_queue) and the worker has the store destroy them every minute;
// until then those keys still exist in the store. Key ids, times and counts only.
async function vaultShredQueue(client: pg.Client): Promise<DoctorCheck> {
  let row: { location: string; stale: number; oldest: Date | null };
  try {
    // vault_pending_shreds gives the oldest first: of 1001, the stale ones are the first.
    row = await one(
      client,
      `select (select l.location from pii.vault_key_location() l) as location, count(*)::int as stale,
              min(q.queued_at) as oldest
       from pii.vault_pending_shreds(1001) q
       where q.queued_at < pg_catalog.now() - pg_catalog.make_interval(mins => $1::int)`,
      [SHRED_QUEUE_STALE_MINUTES],
    );
  } catch (err) {
    return cannotRead('vault', err);
  }
  if (row.stale > 0)
    return {
      check: 'vault',
      status: 'warn',
      detail:
        `${row.stale > 1000 ? 'more than 1000' : row.stale} data key(s) of erased subjects queued for the key store ` +
        `to destroy since ${row.oldest!.toISOString()} (more than ${SHRED_QUEUE_STALE_MINUTES} minutes): ` +
        'the keys still exist in the key store (pii.vault_pending_shreds)',
      fix: 'run lethe worker with the key store (--key-store-url or LETHE_KEY_STORE_URL; its lethe_vault_shred task drains the queue every minute), or once: lethe key-store shred',
    };
  return {
    check: 'vault',
    status: 'ok',
    detail:
      row.location === 'key_store'
        ? `data keys in a separate key store; no erased subject's key queued for more than ${SHRED_QUEUE_STALE_MINUTES} minutes`
        : 'data keys in this database (crypto-shredding in the erasure transaction)',
  };
}

async function lintFindings(client: pg.Client, check: string, query: string): Promise<DoctorCheck[]> {
  let rows: { severity: string; object: string | null; problem: string; hint: string | null }[];
  try {
    rows = (await client.query(query)).rows;
  } catch (err) {
    return [cannotRead(check, err)];
  }
  if (rows.length === 0) return [{ check, status: 'ok', detail: 'no findings' }];
  return rows.map((r) => ({
    check,
    status: r.severity === 'error' ? 'fail' : r.severity === 'warning' ? 'warn' : 'info',
    detail: r.object ? `${r.object}: ${r.problem}` : r.problem,
    ...(r.hint ? { fix: r.hint } : {}),
  }));
}

/** A check the connecting role may not run: say so, and which role can. */
function cannotRead(check: string, err: unknown): DoctorCheck {
  const code = (err as { code?: string }).code;
  if (code !== '42501') throw err;
  return {
    check,
    status: 'warn',
    detail: 'this role may not run this check (permission denied)',
    fix: 'run lethe doctor as the role that installed Lethe, or as a member of pii_admin',
  };
}
