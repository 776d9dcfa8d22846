import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import type { TokenStatus } from './detokenize.js';
import { sqlCall } from './errors.js';

export interface TokenCiphertext {
  token: string;
  kind: string | null;
  keyId: string | null;
  ciphertext: Buffer | null;
  status: TokenStatus;
}

/** pii.detokenize_ciphertexts: each token's ciphertext and data-key id, in order; one audit row per call (pii_dispatcher). */
export async function detokenizeCiphertexts(
  db: LetheDb,
  tokens: readonly string[],
  purpose: string,
  client?: string,
): Promise<TokenCiphertext[]> {
  const args = namedArgs([
    ['tokens', tokens, 'text[]'],
    ['purpose', purpose, 'text'],
    ['client', client, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{
      token: string;
      kind: string | null;
      key_id: string | null;
      ciphertext: Buffer | null;
      status: TokenStatus;
    }>`select token, kind, key_id, ciphertext, status from pii.detokenize_ciphertexts(${args})`.execute(db);
    return rows.map((r) => ({
      token: r.token,
      kind: r.kind,
      keyId: r.key_id,
      ciphertext: r.ciphertext,
      status: r.status,
    }));
  });
}
