import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.release_hold (pii_admin): ends a legal hold now. */
export async function releaseHold(db: LetheDb, holdId: string): Promise<void> {
  await sqlCall(() => sql`select pii.release_hold(${holdId}::uuid)`.execute(db));
}
