import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export interface TokenizeInput {
  subjectKey: string;
  kind: string;
  value: string;
  scope?: string;
}

export interface TokenizeOptions {
  /** The subjects' kind (customer, staff); may be omitted when the install has one. */
  subjectKind?: string;
}

/** pii.tokenize_many: one token per input, in order (NULL for a subject with a tombstone). */
export async function tokenizeMany(
  db: LetheDb,
  inputs: readonly TokenizeInput[],
  opts: TokenizeOptions = {},
): Promise<(string | null)[]> {
  const scoped = inputs.some((i) => i.scope !== undefined);
  const args = namedArgs([
    ['subject_keys', inputs.map((i) => i.subjectKey), 'text[]'],
    ['kinds', inputs.map((i) => i.kind), 'text[]'],
    ['"values"', inputs.map((i) => i.value), 'text[]'],
    ['scopes', scoped ? inputs.map((i) => i.scope ?? null) : undefined, 'text[]'],
    ['subject_kind', opts.subjectKind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ token: string | null }>`
      select token from pii.tokenize_many(${args}) order by ordinality`.execute(db);
    return rows.map((r) => r.token);
  });
}
