// What every command shares: the global options, the database URL rule, the exit codes.
import type { Command } from 'commander';
import { createLethe, type Lethe } from '../api/createLethe.js';
import { resolveDatabaseUrl } from '../db/databaseUrl.js';
import { isRequestId } from '../sql/requestId.js';

/** Exit codes: 0 ok, 1 failure (including "the request failed"), 2 bad usage or input. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Wrong arguments or input: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface GlobalOptions {
  databaseUrl?: string;
  json?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export function databaseUrl(cmd: Command): string {
  const url = resolveDatabaseUrl(globals(cmd).databaseUrl);
  if (!url) {
    throw new UsageError(
      'no database given: pass --database-url postgres://user:password@host:5432/dbname or set DATABASE_URL ' +
        '(only `lethe demo` starts a database of its own)',
    );
  }
  return url;
}

/** Runs fn with a Lethe on the command's database, closing it afterwards. */
export async function withLethe<T>(cmd: Command, fn: (lethe: Lethe) => Promise<T>): Promise<T> {
  const lethe = createLethe({
    connectionString: databaseUrl(cmd),
    applicationName: 'lethe-cli',
    max: 2,
    // Server warnings (a role that can bypass the masks, …) are for the person at the terminal.
    onNotice: (n) => {
      if (n.severity === 'WARNING') info(`warning: ${n.message}${n.hint ? `\nhint: ${n.hint}` : ''}`);
    },
  });
  try {
    return await fn(lethe);
  } finally {
    await lethe.close();
  }
}

export function requestIdArg(value: string): string {
  if (!isRequestId(value)) throw new UsageError(`"${value}" is not a request id (a UUID such as 2b1e0c4e-…)`);
  return value.toLowerCase();
}

export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got "${value}"`);
  return n;
}

/** --due: an ISO date/time, or a delay from now such as 48h or 30d. */
export function dueDate(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const rel = /^(\d+)\s*([hd])$/i.exec(value.trim());
  if (rel) return new Date(Date.now() + Number(rel[1]) * (rel[2]!.toLowerCase() === 'h' ? 3_600_000 : 86_400_000));
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new UsageError(
      `--due must be an ISO date/time (2026-12-24T12:00:00Z) or a delay like 48h or 30d, got "${value}"`,
    );
  return new Date(t);
}

export function modeOption(value: string | undefined): 'erase' | 'delete' | undefined {
  if (value === undefined || value === 'erase' || value === 'delete') return value;
  throw new UsageError(`--mode must be erase or delete, got "${value}"`);
}

/** Diagnostics go to stderr, never stdout (which may be JSON for a script). */
export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * Wraps a command's handler: commander ignores an action's return value, so the exit
 * code it resolves to is recorded here. Thrown errors reach index.ts, which maps them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function action<A extends any[]>(fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await fn(...args);
  };
}
