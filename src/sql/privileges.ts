// What the signed-in role may do, asked of PostgreSQL (the admin shows or hides forms by
// it; the database still refuses whatever a role may not do).
import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface Privileges {
  role: string;
  /** Member of pii_operator (directly, or as pii_admin): may request, import, retry. */
  operator: boolean;
  /** Member of pii_auditor: may read the audit trail. */
  auditor: boolean;
  admin: boolean;
}

export async function privileges(db: LetheDb): Promise<Privileges> {
  return sqlCall(async () => {
    const { rows } = await sql<Privileges>`
      select current_user as role,
             pg_has_role(current_user, 'pii_operator', 'USAGE') as operator,
             pg_has_role(current_user, 'pii_auditor', 'USAGE') as auditor,
             pg_has_role(current_user, 'pii_admin', 'USAGE') as admin`.execute(db);
    return rows[0]!;
  });
}
