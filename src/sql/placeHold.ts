import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface PlaceHoldOptions {
  /** Tables whose rows are kept ('schema.table'); absent: every registered table. */
  tables?: string[];
  kind?: string;
  scopes?: string[];
}

/** pii.place_hold (pii_admin): keeps the subjects' rows, minimised, until the date; returns the hold id. */
export async function placeHold(
  db: LetheDb,
  subjectKeys: string[],
  reason: string,
  until: string,
  opts: PlaceHoldOptions = {},
): Promise<string> {
  return sqlCall(async () => {
    const { rows } = await sql<{ id: string }>`
      select pii.place_hold(${subjectKeys}::text[], ${reason}::text, ${until}::date, ${opts.tables ?? null}::text[]::regclass[],
                            ${opts.kind ?? null}::text, ${opts.scopes ?? null}::text[]) as id`.execute(db);
    return rows[0]!.id;
  });
}
