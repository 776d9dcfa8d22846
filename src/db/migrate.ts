// Installs or upgrades Lethe in an existing database: graphile-worker's schema first (its
// own runner), then Lethe's SQL in ONE transaction under an advisory lock: pending versioned
// migrations in order, then every code file when any of them changed (or a migration ran).
// Running it twice is a no-op. See docs/architecture.md ("Migrations").
import { Logger, runMigrations } from 'graphile-worker';
import pg from 'pg';
import {
  CODE_TABLE,
  MIGRATIONS_TABLE,
  PREAMBLE_SQL,
  readCode,
  readMigrations,
  recordCodeSql,
  recordMigrationSql,
  type SqlDirs,
} from './sqlFiles.js';

export { MIGRATIONS_TABLE, packageRoot } from './sqlFiles.js';

export interface MigrateOptions extends SqlDirs {
  /** Receives progress lines (graphile-worker's messages, each file applied). Silent by default. */
  log?: (line: string) => void;
}

export interface MigrateResult {
  /** Versioned migrations applied by this run, in order (file names). */
  applied: string[];
  /** Code files re-applied by this run (all of them, or none). */
  code: string[];
}

export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const migrations = readMigrations(opts.migrationsDir);
  const code = readCode(opts.codeDir);

  // graphile-worker first: Lethe's code queues jobs with graphile_worker.add_job.
  await runMigrations({
    connectionString: databaseUrl,
    logger: new Logger(() => (_level, message) => log(`graphile-worker: ${message}`)),
  });

  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'lethe-migrate' });
  // The SQL's NOTICEs say what an install without superuser lacks (event triggers) and what to do.
  client.on('notice', (n) => log(`lethe: notice: ${n.message}`));
  await client.connect();
  try {
    await client.query('begin');
    const { rows: legacy } = await client.query(`select pg_catalog.to_regclass('pii.lethe_migrations') as t`);
    if (legacy[0].t) {
      throw new Error(
        'this database holds a pre-release Lethe installed by dbmate (pii.lethe_migrations): drop schemas pii and masked and install again',
      );
    }
    await client.query(PREAMBLE_SQL);
    const recorded = (await client.query(`select version, name, sha256 from ${MIGRATIONS_TABLE} order by version`))
      .rows as { version: number; name: string; sha256: string }[];
    const pending = pendingMigrations(migrations, recorded);

    const applied: string[] = [];
    for (const m of pending) {
      await client.query(m.sql);
      await client.query(recordMigrationSql(m));
      applied.push(m.name);
      log(`lethe: applied migration ${m.name}`);
    }

    const codeRecorded = new Map(
      (await client.query(`select name, sha256 from ${CODE_TABLE}`)).rows.map((r) => [
        r.name as string,
        r.sha256 as string,
      ]),
    );
    const codeChanged =
      applied.length > 0 ||
      codeRecorded.size !== code.length ||
      code.some((f) => codeRecorded.get(f.name) !== f.sha256);
    if (codeChanged) {
      for (const f of code) {
        await client.query(f.sql);
        log(`lethe: applied code ${f.name}`);
      }
      await client.query(recordCodeSql(code));
    }
    await client.query('commit');
    return { applied, code: codeChanged ? code.map((f) => f.name) : [] };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

/** The migrations still to apply, after checking the recorded ones against the files: released migrations are immutable. */
function pendingMigrations<M extends { version: number; name: string; sha256: string }>(
  files: M[],
  recorded: { version: number; name: string; sha256: string }[],
): M[] {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const r of recorded) {
    const f = byVersion.get(r.version);
    if (!f) {
      throw new Error(
        `migration ${r.name} is recorded in ${MIGRATIONS_TABLE} but this Lethe has no such file: the database was installed by a newer Lethe`,
      );
    }
    if (f.sha256 !== r.sha256 || f.name !== r.name) {
      throw new Error(
        `db/migrations/${f.name} differs from the ${r.name} applied to this database (sha256 ${r.sha256}, file ${f.sha256}): released migrations are immutable, write a new migration instead`,
      );
    }
  }
  const last = recorded.at(-1)?.version ?? 0;
  const done = new Set(recorded.map((r) => r.version));
  const pending = files.filter((f) => !done.has(f.version));
  const early = pending.find((f) => f.version < last);
  if (early) {
    throw new Error(
      `db/migrations/${early.name} is older than the last applied migration (${last}) but was never applied: number a new migration after the last released one`,
    );
  }
  return pending;
}
