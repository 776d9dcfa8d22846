// PII API keys: lethe pii-api keys create|list|revoke, and the server's check on every
// request. Keys are generated here and only their SHA-256 reaches the database.
import { createHash, randomBytes } from 'node:crypto';
import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export type ApiKeyScope = 'dispatcher' | 'ping';

export interface ApiKey {
  id: string;
  name: string;
  scope: ApiKeyScope;
}

export interface ApiKeyListing extends ApiKey {
  createdBy: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const KEY_PREFIX = 'lethe_pk_';

export function apiKeyHash(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

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

/** pii.api_key_list: every key, active and revoked, without hashes. */
export async function listApiKeys(db: LetheDb): Promise<ApiKeyListing[]> {
  return sqlCall(async () => {
    const rows = await db
      .selectFrom('pii.api_key_list')
      .select(['id', 'name', 'scope', 'created_by', 'created_at', 'revoked_at'])
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      id: r.id!,
      name: r.name!,
      scope: r.scope as ApiKeyScope,
      createdBy: r.created_by!,
      createdAt: r.created_at!,
      revokedAt: r.revoked_at,
    }));
  });
}

/** pii.revoke_api_key by name or id: the running server refuses the key from its next request. */
export async function revokeApiKey(db: LetheDb, nameOrId: string): Promise<number> {
  return sqlCall(async () => {
    const { rows } = await sql<{ n: number }>`select pii.revoke_api_key(${nameOrId}::text) as n`.execute(db);
    return rows[0]!.n;
  });
}

/** pii.api_key_scope: the active key for a presented key (by hash) or an OAuth token's key id. */
export async function findActiveApiKey(db: LetheDb, by: { key: string } | { id: string }): Promise<ApiKey | undefined> {
  const args =
    'key' in by ? namedArgs([['key_hash', apiKeyHash(by.key), 'bytea']]) : namedArgs([['key_id', by.id, 'uuid']]);
  return sqlCall(async () => {
    const { rows } = await sql<ApiKey>`select id, name, scope from pii.api_key_scope(${args})`.execute(db);
    return rows[0];
  });
}
