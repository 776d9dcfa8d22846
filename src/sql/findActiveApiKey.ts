import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';
import { type ApiKey, apiKeyHash } from './apiKeys.js';

/** pii.api_key_scope: the active key for a presented key (by hash) or an OAuth token's key id. */
export async function findActiveApiKey(db: LetheDb, by: { key: string } | { id: string }): Promise<ApiKey | undefined> {
  const args =
    'key' in by ? namedArgs([['key_hash', apiKeyHash(by.key), 'bytea']]) : namedArgs([['key_id', by.id, 'uuid']]);
  return sqlCall(async () => {
    const { rows } = await sql<ApiKey>`select id, name, scope from pii.api_key_scope(${args})`.execute(db);
    return rows[0];
  });
}
