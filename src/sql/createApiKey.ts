import { randomBytes } from 'node:crypto';
import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';
import { type ApiKey, apiKeyHash, type ApiKeyScope } from './apiKeys.js';

const KEY_PREFIX = 'lethe_pk_';

/** pii.create_api_key with a fresh 256-bit key; the key is returned once and never stored. */
export async function createApiKey(db: LetheDb, name: string, scope?: ApiKeyScope): Promise<ApiKey & { key: string }> {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const args = namedArgs([
    ['name', name, 'text'],
    ['key_hash', apiKeyHash(key), 'bytea'],
    ['scope', scope, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ id: string }>`select pii.create_api_key(${args}) as id`.execute(db);
    return { id: rows[0]!.id, name, scope: scope ?? 'dispatcher', key };
  });
}
