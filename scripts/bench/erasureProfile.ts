// Where the bulk erasure's time goes: EXPLAIN (ANALYZE, BUFFERS) of every statement of
// pii_internal.erase_plan('erase') and of the floor's statements, on the same subjects, each set in
// a rolled-back transaction; and pg_stat_statements around pii.erase_subjects and around
// the request path, which shows the engine's own statements (resolution, tombstones,
// identifier capture, verification) beside the five DML statements.
import type pg from 'pg';
import type { Eraser } from './erasure.js';
import { explainAnalyze, paramCount, profileStatements, type StatementStat } from './profile.js';
import { HAND_STATEMENTS } from './setup.js';
import { rowsWritten, type RowsWritten, writtenSince } from './state.js';

export interface StatementTiming {
  table: string;
  action: string;
  statement: string;
  ms: number;
  rows: { upd: number; del: number };
  plan: string;
}

export interface BulkProfile {
  engine: StatementTiming[];
  hand: StatementTiming[];
  /** pg_stat_statements around pii.erase_subjects. */
  engineStatements: StatementStat[];
  /** pg_stat_statements around the request path (request, chunks, finish). */
  requestStatements: StatementStat[];
}

function delta(before: RowsWritten, after: RowsWritten, table: string) {
  const d = writtenSince(before, after)[table];
  return { upd: d?.upd ?? 0, del: d?.del ?? 0 };
}

async function explainAll(
  db: pg.Client,
  steps: Array<{ table: string; action: string; statement: string }>,
  params: (n: number) => unknown[],
) {
  const out: StatementTiming[] = [];
  await db.query('begin');
  try {
    // The guards fire as they do for the engine (there is no bypass): the profile includes them.
    for (const s of steps) {
      const before = await rowsWritten(db);
      const { plan, ms } = await explainAnalyze(db, s.statement, params(paramCount(s.statement)));
      out.push({ ...s, ms, plan, rows: delta(before, await rowsWritten(db), s.table) });
    }
  } finally {
    await db.query('rollback');
  }
  return out;
}

export async function profileBulk(
  db: pg.Client,
  eraser: Eraser,
  keys: string[],
  pgss: boolean,
  log: (s: string) => void,
): Promise<BulkProfile> {
  log("profile: EXPLAIN (ANALYZE, BUFFERS) of pii_internal.erase_plan('erase')");
  const { rows: plan } = await db.query<{ table_name: string; action: string; statement: string }>(
    `select table_name, action, statement from pii_internal.erase_plan('erase')`,
  );
  const scopes = keys.map(() => null);
  const engine = await explainAll(
    db,
    plan.map((p) => ({ table: p.table_name, action: p.action, statement: p.statement })),
    (n) => [keys, scopes, null, null].slice(0, n),
  );
  await eraser.restore();

  log('profile: EXPLAIN (ANALYZE, BUFFERS) of the floor');
  const hand = await explainAll(
    db,
    HAND_STATEMENTS.map((s) => ({
      table: s.table,
      action: /^\s*delete/i.test(s.sql) ? 'delete' : 'anonymize',
      statement: s.sql,
    })),
    () => [keys],
  );
  await eraser.restore();

  let engineStatements: StatementStat[] = [];
  let requestStatements: StatementStat[] = [];
  if (pgss) {
    log('profile: pg_stat_statements around pii.erase_subjects');
    await db.query('begin');
    try {
      engineStatements = (await profileStatements(db, true, () => eraser.erase('lethe', keys), 12)).statements;
    } finally {
      await db.query('rollback');
    }
    await eraser.restore();
    log('profile: pg_stat_statements around the request path');
    await db.query('begin');
    try {
      requestStatements = (await profileStatements(db, true, () => eraser.erase('request', keys), 14)).statements;
    } finally {
      await db.query('rollback');
    }
    await eraser.restore();
  }
  return { engine, hand, engineStatements, requestStatements };
}
