import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

/** pii.vault_key_ids: each subject's data-key id in the key store, in order (NULL for a tombstoned subject). */
export async function vaultKeyIds(
  db: LetheDb,
  subjectKeys: readonly string[],
  opts: { scopes?: readonly (string | null)[]; subjectKind?: string } = {},
): Promise<(string | null)[]> {
  const args = namedArgs([
    ['subject_keys', subjectKeys, 'text[]'],
    ['scopes', opts.scopes, 'text[]'],
    ['subject_kind', opts.subjectKind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ key_id: string | null }>`
      select key_id from pii.vault_key_ids(${args}) order by ordinality`.execute(db);
    return rows.map((r) => r.key_id);
  });
}
