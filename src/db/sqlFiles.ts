// Lethe's SQL as files: versioned migrations (db/migrations/NNNN_name.sql, state, applied
// once, immutable once released) and repeatable code (db/code/NN_name.sql, idempotent,
// re-applied whole when any file changed). The runner (migrate.ts) and the psql install
// script (installScript.ts) both read them here and share the bookkeeping SQL below.
// docs/architecture.md explains the model.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MIGRATIONS_TABLE = 'pii_internal.migrations';
export const CODE_TABLE = 'pii_internal.code_files';

/** Key of the transaction-level advisory lock every install or upgrade holds ('lethe' in hex). */
export const MIGRATE_LOCK_KEY = '465742014565';

export interface SqlFile {
  name: string;
  sql: string;
  sha256: string;
}
export interface Migration extends SqlFile {
  version: number;
}

export interface SqlDirs {
  /** Defaults to the db/migrations directory shipped with this package. */
  migrationsDir?: string;
  /** Defaults to the db/code directory shipped with this package. */
  codeDir?: string;
}

/** Run first in the transaction: the lock, then the bookkeeping tables (the runner's own, like graphile_worker.migrations). */
export const PREAMBLE_SQL = `select pg_catalog.pg_advisory_xact_lock(${MIGRATE_LOCK_KEY});
create schema if not exists pii_internal;
create table if not exists ${MIGRATIONS_TABLE} (
  version integer primary key,
  name text not null,
  sha256 text not null,
  applied_at timestamptz not null default pg_catalog.now()
);
create table if not exists ${CODE_TABLE} (
  name text primary key,
  sha256 text not null,
  applied_at timestamptz not null default pg_catalog.now()
);`;

export function readMigrations(dir = join(packageRoot(), 'db', 'migrations')): Migration[] {
  return readSqlFiles(dir, /^(\d{4})_[a-z0-9_]+\.sql$/).map((f) => ({ ...f, version: Number(f.name.slice(0, 4)) }));
}

export function readCode(dir = join(packageRoot(), 'db', 'code')): SqlFile[] {
  return readSqlFiles(dir, /^\d{2}_[a-z0-9_]+\.sql$/);
}

function readSqlFiles(dir: string, pattern: RegExp): SqlFile[] {
  if (!existsSync(dir)) throw new Error(`no Lethe SQL directory ${dir}`);
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const bad = names.find((n) => !pattern.test(n));
  if (bad) throw new Error(`${join(dir, bad)}: file name does not match ${pattern}`);
  if (names.length === 0) throw new Error(`no Lethe SQL files in ${dir}`);
  return names.map((name) => {
    const sql = readFileSync(join(dir, name), 'utf8');
    return { name, sql, sha256: createHash('sha256').update(sql).digest('hex') };
  });
}

export function recordMigrationSql(m: Migration): string {
  return `insert into ${MIGRATIONS_TABLE} (version, name, sha256) values (${m.version}, ${literal(m.name)}, ${literal(m.sha256)});`;
}

/** Replaces the code bookkeeping with the files just applied. */
export function recordCodeSql(files: SqlFile[]): string {
  const rows = files.map((f) => `(${literal(f.name)}, ${literal(f.sha256)})`).join(',\n  ');
  return `delete from ${CODE_TABLE};\ninsert into ${CODE_TABLE} (name, sha256) values\n  ${rows};`;
}

/** File names and hashes are [0-9a-z_.]: quoting is for form's sake. */
function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** The directory holding Lethe's package.json, from src/db (tsx) or a compiled dist/db alike. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find Lethe's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}
