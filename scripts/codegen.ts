// Regenerates src/db/types.ts (Kysely types of the `pii` schema) from a freshly migrated
// database, so the TypeScript side can never silently disagree with the migrations.
//
//   npm run codegen                      # throwaway embedded PostgreSQL
//   npm run codegen -- --database-url postgres://…/postgres   # a server you have
//
// The target server only needs CREATE DATABASE rights: a scratch database is created,
// migrated, introspected and dropped. test/kyselyTypes.test.ts fails on drift.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { withDatabase, withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate, packageRoot } from '../src/db/migrate.js';
import { runSql } from '../src/db/runSql.js';

const run = promisify(execFile);

export const TYPES_FILE = join(packageRoot(), 'src', 'db', 'types.ts');

/** Runs kysely-codegen against an already migrated database and writes outFile. */
export async function runKyselyCodegen(databaseUrl: string, outFile: string): Promise<void> {
  // The package's own bin, run by this Node: no npx lookup, no shell quoting of the glob.
  const bin = createRequire(import.meta.url).resolve('kysely-codegen/dist/cli/bin.js');
  const args = [
    bin,
    '--dialect',
    'postgres',
    '--include-pattern',
    'pii.*',
    '--url',
    databaseUrl,
    '--out-file',
    outFile,
    '--log-level',
    'error',
  ];
  try {
    await run(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kysely-codegen failed: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
}

/** Creates a scratch database on serverUrl, migrates it, generates outFile, drops the database. */
export async function generateTypes(serverUrl: string, outFile = TYPES_FILE): Promise<void> {
  const name = `lethe_codegen_${randomBytes(4).toString('hex')}`;
  await runSql(serverUrl, `create database ${pg.escapeIdentifier(name)}`);
  try {
    const url = withDatabaseName(serverUrl, name);
    await migrate(url);
    await runKyselyCodegen(url, outFile);
  } finally {
    await runSql(serverUrl, `drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'database-url': { type: 'string' }, 'out-file': { type: 'string' } },
    strict: true,
  });
  const outFile = values['out-file'] ?? TYPES_FILE;
  await withDatabase((url) => generateTypes(url, outFile), { databaseUrl: values['database-url'] });
  console.log(`wrote ${outFile}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
