// A backup of a database restored into a new database: pg_dump (custom format) and
// pg_restore when a pg_dump at least as new as the server is installed, else CREATE
// DATABASE … TEMPLATE, the same schema and rows (the source's sessions closed first).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { inject } from 'vitest';
import { withDatabaseName } from '../../src/db/databaseUrl.js';
import { compatiblePgDump } from './dumpDatabase.js';
import { admin } from './testDatabase.js';

const run = promisify(execFile);

export interface Backup {
  /** pg_dump's archive, or the name of a template copy of the database at that moment. */
  take(): Promise<void>;
  /** Restores the backup into a new database and returns its URL. */
  restore(name: string): Promise<string>;
  method: 'pg_dump' | 'template';
  cleanup(): Promise<void>;
}

export async function backupOf(sourceUrl: string, serverMajor: number, label: string): Promise<Backup> {
  const pgDump = await compatiblePgDump(serverMajor);
  const source = new URL(sourceUrl).pathname.slice(1);
  const created: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), `lethe-backup-${label}-`));
  const archive = join(dir, 'backup.dump');
  const snapshot = `${source}_${label}`;
  const terminate = (db: string) =>
    admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${db}' and pid <> pg_backend_pid()`);
  return {
    method: pgDump ? 'pg_dump' : 'template',
    async take() {
      if (pgDump) {
        await run(pgDump, ['--format', 'custom', '--file', archive, '--dbname', sourceUrl]);
      } else {
        await terminate(source);
        await admin(`create database ${pg.escapeIdentifier(snapshot)} template ${pg.escapeIdentifier(source)}`);
        created.push(snapshot);
      }
    },
    async restore(name) {
      const url = withDatabaseName(inject('adminUrl'), name);
      if (pgDump) {
        await admin(`create database ${pg.escapeIdentifier(name)} template template0`);
        created.push(name);
        await run(pgDump.replace(/pg_dump$/, 'pg_restore'), ['--exit-on-error', '--dbname', url, archive]);
      } else {
        await admin(`create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(snapshot)}`);
        created.push(name);
      }
      return url;
    },
    async cleanup() {
      for (const db of created.reverse())
        await admin(`drop database if exists ${pg.escapeIdentifier(db)} with (force)`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
