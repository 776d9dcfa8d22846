import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface LintProblem {
  severity: 'error' | 'warning' | 'notice';
  table_name: string | null;
  column_name: string | null;
  problem: string;
  hint: string | null;
}

export const LINT_COLUMNS = [
  'severity',
  'table_name',
  'column_name',
  'problem',
  'hint',
] as const satisfies ReadonlyArray<keyof LintProblem>;

/** pii.lint: registry problems (unindexed subject columns, dropped columns, missing grants…). */
export async function lint(db: LetheDb): Promise<LintProblem[]> {
  return sqlCall(async () => (await sql<LintProblem>`select * from pii.lint()`.execute(db)).rows);
}
