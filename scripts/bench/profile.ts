// Profiling helpers: pg_stat_statements around a piece of work (nested statements
// included, so the engine's dynamic SQL shows up statement by statement) and EXPLAIN
// (ANALYZE, BUFFERS) of statements with their parameters bound.
import type pg from 'pg';

export interface StatementStat {
  query: string;
  calls: number;
  totalMs: number;
  rows: number;
  sharedHit: number;
  sharedRead: number;
}

/**
 * Runs fn with pg_stat_statements tracking nested statements, and returns the statements
 * that took the most time. Needs the extension (preloaded in the embedded cluster) and a
 * superuser (track is a superuser setting); otherwise returns no statements.
 */
export async function profileStatements<T>(
  db: pg.ClientBase,
  enabled: boolean,
  fn: () => Promise<T>,
  limit = 10,
): Promise<{ value: T; statements: StatementStat[] }> {
  let tracking = false;
  if (enabled) {
    try {
      await db.query(`set pg_stat_statements.track = 'all'`);
      await db.query(
        `select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`,
      );
      tracking = true;
    } catch {
      tracking = false;
    }
  }
  const value = await fn();
  if (!tracking) return { value, statements: [] };
  try {
    const { rows } = await db.query<{
      query: string;
      calls: string;
      total: string;
      rows: string;
      hit: string;
      read: string;
    }>(
      `select query, calls, total_exec_time as total, rows, shared_blks_hit as hit, shared_blks_read as read
         from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
          and query !~* '^\\s*(begin|commit|rollback|set |select pg_stat_statements_reset|savepoint|release)'
        order by total_exec_time desc
        limit $1`,
      [limit],
    );
    return {
      value,
      statements: rows.map((r) => ({
        query: shorten(r.query),
        calls: Number(r.calls),
        totalMs: Number(r.total),
        rows: Number(r.rows),
        sharedHit: Number(r.hit),
        sharedRead: Number(r.read),
      })),
    };
  } finally {
    await db.query(`set pg_stat_statements.track = 'top'`).catch(() => undefined);
  }
}

/** One line, long array literals and whitespace collapsed. */
export function shorten(sql: string, max = 220): string {
  const s = collapseLiterals(sql).replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Replaces long array literals (the 50,000 keys of a custom plan) by a count. */
export function collapseLiterals(text: string): string {
  return text.replace(/'\{([^']{120,})\}'/g, (_m, body: string) => `'{…${body.split(',').length} keys…}'`);
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of a statement with parameters bound (in the caller's
 * transaction: it does run). Returns the plan text and the execution time it reports.
 */
export async function explainAnalyze(
  db: pg.ClientBase,
  statement: string,
  params: unknown[],
): Promise<{ plan: string; ms: number }> {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(
    `explain (analyze, buffers, costs off, timing on) ${statement}`,
    params,
  );
  const lines = rows.map((r) => collapseLiterals(r['QUERY PLAN']));
  const exec = lines.map((l) => /Execution Time: ([\d.]+) ms/.exec(l)).find(Boolean);
  return { plan: lines.join('\n'), ms: exec ? Number(exec[1]) : Number.NaN };
}

/** Highest $n a statement refers to. */
export function paramCount(statement: string): number {
  let max = 0;
  for (const m of statement.matchAll(/\$(\d+)/g)) max = Math.max(max, Number(m[1]));
  return max;
}
