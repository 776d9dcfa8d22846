// Where Lethe connects: an explicit --database-url, else DATABASE_URL, else (for the demo,
// scripts and tests) a throwaway embedded cluster.
import { startEmbeddedPostgres } from './embeddedPostgres.js';

/** The --database-url option if given, else DATABASE_URL, else undefined. */
export function resolveDatabaseUrl(option?: string): string | undefined {
  return option || process.env.DATABASE_URL || undefined;
}

/**
 * Runs fn with a server URL: the resolved one if any, otherwise a fresh embedded
 * cluster that is stopped (and deleted) when fn settles.
 */
export async function withDatabase<T>(
  fn: (url: string) => Promise<T>,
  opts: { databaseUrl?: string; log?: (line: string) => void } = {},
): Promise<T> {
  const url = resolveDatabaseUrl(opts.databaseUrl);
  if (url) return fn(url);
  const cluster = await startEmbeddedPostgres({ log: opts.log });
  try {
    return await fn(cluster.url);
  } finally {
    await cluster.stop();
  }
}

/** The same server and credentials, another database. */
export function withDatabaseName(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}
