import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export type TokenStatus = 'ok' | 'erased' | 'unknown';

export interface Detokenized {
  token: string;
  kind: string | null;
  value: string | null;
  status: TokenStatus;
}

/** pii.detokenize: one result per token, in order; one audit row per call (pii_dispatcher only). */
export async function detokenize(
  db: LetheDb,
  tokens: readonly string[],
  purpose: string,
  client?: string,
): Promise<Detokenized[]> {
  const args = namedArgs([
    ['tokens', tokens, 'text[]'],
    ['purpose', purpose, 'text'],
    ['client', client, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<Detokenized>`select token, kind, value, status from pii.detokenize(${args})`.execute(db);
    return rows;
  });
}
