// Installs Lethe into an existing database: graphile-worker's schema, then Lethe's own
// dbmate migrations, recorded in a table of Lethe's own so an application that also
// uses dbmate (public.schema_migrations) never sees them.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { resolveBinary } from 'dbmate';
import { Logger, runMigrations } from 'graphile-worker';

const run = promisify(execFile);

/** dbmate creates the schema of a qualified table itself (`Creating schema: pii`). */
export const LETHE_MIGRATIONS_TABLE = 'pii.lethe_migrations';

export interface MigrateOptions {
  /** Defaults to the db/migrations directory shipped with this package. */
  migrationsDir?: string;
  /** Receives progress lines (dbmate's output, graphile-worker's messages). Silent by default. */
  log?: (line: string) => void;
}

export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const log = opts.log ?? (() => {});
  const migrationsDir = opts.migrationsDir ?? join(packageRoot(), 'db', 'migrations');
  if (!existsSync(migrationsDir) || !readdirSync(migrationsDir).some((f) => f.endsWith('.sql'))) {
    throw new Error(`no Lethe migrations found in ${migrationsDir}`);
  }

  // graphile-worker first: Lethe's migrations may reference graphile_worker (e.g. add_job).
  await runMigrations({
    connectionString: databaseUrl,
    logger: new Logger(() => (_level, message) => log(`graphile-worker: ${message}`)),
  });

  // `migrate`, not `up`: `up` would also try to CREATE DATABASE, which needs a connection
  // to the maintenance database and CREATEDB; Lethe installs into a database that exists.
  const args = [
    '--url',
    dbmateUrl(databaseUrl),
    '--migrations-dir',
    migrationsDir,
    '--migrations-table',
    LETHE_MIGRATIONS_TABLE,
    '--no-dump-schema',
    'migrate',
  ];
  let stdout: string;
  try {
    ({ stdout } = await run(resolveBinary(), args, { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`dbmate migrate failed: ${(e.stderr || e.message).trim()}\n${e.stdout ?? ''}`.trim(), {
      cause: err,
    });
  }
  const applied: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim()) log(`dbmate: ${line}`);
    const m = /^Applied: (\S+)/.exec(line);
    if (m?.[1]) applied.push(m[1]);
  }
  return { applied };
}

/**
 * dbmate (Go lib/pq) defaults to sslmode=require while node-postgres defaults to no TLS;
 * make the same URL mean the same thing to both.
 */
export function dbmateUrl(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  if (!u.searchParams.has('sslmode')) u.searchParams.set('sslmode', 'disable');
  return u.toString();
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
