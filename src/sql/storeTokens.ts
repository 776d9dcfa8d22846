import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export interface EncryptedValue {
  subjectKey: string;
  kind: string;
  /** NULL (with ciphertext NULL) for a subject pii.vault_key_ids found tombstoned: it gets no token. */
  keyId: string | null;
  ciphertext: Buffer | null;
  /** Only for a deterministic kind (its token is a keyed hash of the value). */
  value?: string;
  scope?: string;
}

/** pii.store_tokens: stores ciphertext made with the key store's keys; one token per input, in order. */
export async function storeTokens(
  db: LetheDb,
  inputs: readonly EncryptedValue[],
  opts: { subjectKind?: string } = {},
): Promise<(string | null)[]> {
  const scoped = inputs.some((i) => i.scope !== undefined);
  const withValues = inputs.some((i) => i.value !== undefined);
  const args = namedArgs([
    ['subject_keys', inputs.map((i) => i.subjectKey), 'text[]'],
    ['kinds', inputs.map((i) => i.kind), 'text[]'],
    ['key_ids', inputs.map((i) => i.keyId), 'uuid[]'],
    ['ciphertexts', inputs.map((i) => i.ciphertext), 'bytea[]'],
    ['"values"', withValues ? inputs.map((i) => i.value ?? null) : undefined, 'text[]'],
    ['scopes', scoped ? inputs.map((i) => i.scope ?? null) : undefined, 'text[]'],
    ['subject_kind', opts.subjectKind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ token: string | null }>`
      select token from pii.store_tokens(${args}) order by ordinality`.execute(db);
    return rows.map((r) => r.token);
  });
}
