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
  /** May stage CSV rows (INSERT on pii.import_rows): what an upload needs. */
  importer: boolean;
}

export async function privileges(db: LetheDb): Promise<Privileges> {
  return sqlCall(async () => {
    const { rows } = await sql<Privileges>`
      select current_user as role,
             pg_has_role(current_user, 'pii_operator', 'USAGE') as operator,
             pg_has_role(current_user, 'pii_auditor', 'USAGE') as auditor,
             pg_has_role(current_user, 'pii_admin', 'USAGE') as admin,
             -- Naming a pii table needs USAGE on the schema: a role without it may not import.
             case when has_schema_privilege('pii', 'USAGE')
                  then has_table_privilege(current_user, 'pii.import_rows', 'INSERT') else false end as importer`.execute(
      db,
    );
    return rows[0]!;
  });
}
