import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';
import type { ApiKeyListing, ApiKeyScope } from './apiKeys.js';

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
