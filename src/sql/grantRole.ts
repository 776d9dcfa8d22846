import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.grant_role: makes a login role a member of one of Lethe's group roles (pii_operator, …). */
export async function grantRole(db: LetheDb, groupRole: string, loginRole: string): Promise<void> {
  await sqlCall(() => sql`select pii.grant_role(${groupRole}::text, ${loginRole}::name)`.execute(db));
}
