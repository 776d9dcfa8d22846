// Read side of the registry: the views pii.registered_tables and pii.registered_columns,
// typed by the generated schema.
import type { Selectable } from 'kysely';
import type { PiiRegisteredColumns, PiiRegisteredTables } from '../db/types.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export type RegisteredTable = Selectable<PiiRegisteredTables>;
export type RegisteredColumn = Selectable<PiiRegisteredColumns>;

export async function registeredTables(db: LetheDb): Promise<RegisteredTable[]> {
  return sqlCall(() => db.selectFrom('pii.registered_tables').selectAll().orderBy('table_name').execute());
}

export async function registeredColumns(db: LetheDb, table?: string): Promise<RegisteredColumn[]> {
  return sqlCall(() => {
    let q = db.selectFrom('pii.registered_columns').selectAll();
    if (table !== undefined) q = q.where('table_name', '=', table);
    return q.orderBy('table_name').orderBy('column_name').execute();
  });
}
