import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.approve_retention: approves the policy's current version (pii_admin only). */
export async function approveRetention(db: LetheDb, name: string, version: number): Promise<void> {
  await sqlCall(() => sql`select pii.approve_retention(${name}::text, ${version}::integer)`.execute(db));
}
