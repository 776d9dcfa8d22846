// PII API keys: the types every key module shares, and the hash that is all the
// database ever sees of a key.
import { createHash } from 'node:crypto';

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

export function apiKeyHash(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}
