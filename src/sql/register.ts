// Write side of the registry: pii.register_subject_table, register_table,
// register_child_table, register_column. Validation is the SQL functions' job.
import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export type OnErase = 'anonymize' | 'delete';

export async function registerSubjectTable(
  db: LetheDb,
  table: string,
  keyColumn: string,
  opts: { scopeColumn?: string; keyIsPii?: boolean } = {},
): Promise<void> {
  const args = namedArgs([
    ['tbl', table, 'regclass'],
    ['key_column', keyColumn, 'name'],
    ['scope_column', opts.scopeColumn, 'name'],
    ['key_is_pii', opts.keyIsPii, 'boolean'],
  ]);
  await sqlCall(() => sql`select pii.register_subject_table(${args})`.execute(db));
}

/** How a registered table's join is backed (docs/schemas.md). */
export interface JoinOptions {
  /** The foreign key constraint to join by, when several connect the two tables. */
  foreignKey?: string;
  /** Register a join no foreign key backs (pii.lint() lists it). */
  unenforcedJoin?: boolean;
}

export async function registerTable(
  db: LetheDb,
  table: string,
  subjectColumn: string,
  onErase: OnErase,
  opts: JoinOptions & { scopeColumn?: string } = {},
): Promise<void> {
  const args = namedArgs([
    ['tbl', table, 'regclass'],
    ['subject_column', subjectColumn, 'name'],
    ['on_erase', onErase, 'text'],
    ['scope_column', opts.scopeColumn, 'name'],
    ['foreign_key', opts.foreignKey, 'name'],
    ['unenforced_join', opts.unenforcedJoin, 'boolean'],
  ]);
  await sqlCall(() => sql`select pii.register_table(${args})`.execute(db));
}

export interface ChildTableOptions extends JoinOptions {
  onErase?: OnErase;
  parentColumn?: string;
  /** Rows others also reference (a shared address): keep (default) or erase. */
  shared?: 'keep' | 'erase';
}

export async function registerChildTable(
  db: LetheDb,
  table: string,
  parent: string,
  fkColumn: string | undefined,
  opts: ChildTableOptions = {},
): Promise<void> {
  const args = namedArgs([
    ['tbl', table, 'regclass'],
    ['parent', parent, 'regclass'],
    ['fk_column', fkColumn, 'name'],
    ['on_erase', opts.onErase, 'text'],
    ['parent_column', opts.parentColumn, 'name'],
    ['foreign_key', opts.foreignKey, 'name'],
    ['unenforced_join', opts.unenforcedJoin, 'boolean'],
    ['shared', opts.shared, 'text'],
  ]);
  await sqlCall(() => sql`select pii.register_child_table(${args})`.execute(db));
}

export interface ColumnRule {
  /** null | set:<literal> | pseudonym | jsonb_remove:<key>,… | keep */
  erase: string;
  /** hide | email | partial:<first>,<last> | hash | year | set:<literal> | clear */
  mask?: string;
  category?: string;
}

export async function registerColumn(db: LetheDb, table: string, column: string, rule: ColumnRule): Promise<void> {
  const args = namedArgs([
    ['tbl', table, 'regclass'],
    ['col', column, 'name'],
    ['erase', rule.erase, 'text'],
    ['mask', rule.mask, 'text'],
    ['category', rule.category, 'text'],
  ]);
  await sqlCall(() => sql`select pii.register_column(${args})`.execute(db));
}
