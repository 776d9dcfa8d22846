import { sql } from './kysely.js';
import { type LetheDb, toNumber } from './db.js';
import { sqlCall } from './errors.js';

export interface RetentionPreview {
  version: number;
  /** Subjects enforcement would erase now (held ones left out). */
  candidates: number;
  /** Subjects the query selects that are under a legal hold. */
  held: number;
  maxSubjects: number;
  withinLimit: boolean;
  /** Up to 20 keyed subject hashes (hex). */
  sample: string[];
  /** Rows each registered table would change. */
  rowsToChange: Record<string, number>;
}

/** pii.preview_retention: what enforcing the policy would do now; changes nothing but an audit row. */
export async function previewRetention(db: LetheDb, name: string): Promise<RetentionPreview> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      version: number;
      candidates: string;
      held: string;
      max_subjects: number;
      within_limit: boolean;
      sample: string[];
      rows_to_change: Record<string, number>;
    }>`select * from pii.preview_retention(${name}::text)`.execute(db);
    const r = rows[0]!;
    return {
      version: r.version,
      candidates: toNumber(r.candidates),
      held: toNumber(r.held),
      maxSubjects: r.max_subjects,
      withinLimit: r.within_limit,
      sample: r.sample,
      rowsToChange: r.rows_to_change,
    };
  });
}
