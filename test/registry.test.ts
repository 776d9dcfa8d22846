// pii.register_* / unregister_* / registered_* / lint: every rule is validated at
// registration, and a refused registration changes nothing.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';

let db: TestDatabase;
const registryState = async () =>
  (
    await db.query(`select (select count(*) from pii.tables) as tables, (select count(*) from pii.columns) as columns,
                          (select count(*) from pii.subject_table) as subjects`)
  ).rows[0];

beforeAll(async () => {
  db = await createTestDatabase('registry');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
});
afterAll(() => db.drop());

describe('registered views', () => {
  it('lists tables with how they reach the subject', async () => {
    const { rows } = await db.query(
      `select table_name, link, subject_column, parent_table, parent_fk_column, parent_key_column, on_erase, guard_mode, has_index
       from pii.registered_tables order by table_name`,
    );
    expect(rows).toEqual([
      {
        table_name: 'app.customers',
        link: 'subject',
        subject_column: 'id',
        parent_table: null,
        parent_fk_column: null,
        parent_key_column: null,
        on_erase: 'anonymize',
        guard_mode: 'scrub',
        has_index: true,
      },
      {
        table_name: 'app.engravings',
        link: 'via parent',
        subject_column: null,
        parent_table: 'app.order_items',
        parent_fk_column: 'order_item_id',
        parent_key_column: 'id',
        on_erase: 'anonymize',
        guard_mode: 'scrub',
        has_index: true,
      },
      {
        table_name: 'app.events',
        link: 'direct',
        subject_column: 'customer_id',
        parent_table: null,
        parent_fk_column: null,
        parent_key_column: null,
        on_erase: 'delete',
        guard_mode: 'scrub',
        has_index: true,
      },
      {
        table_name: 'app.loyalty_points',
        link: 'direct',
        subject_column: 'customer_id',
        parent_table: null,
        parent_fk_column: null,
        parent_key_column: null,
        on_erase: 'delete',
        guard_mode: 'scrub',
        has_index: false,
      },
      {
        table_name: 'app.order_items',
        link: 'via parent',
        subject_column: null,
        parent_table: 'app.orders',
        parent_fk_column: 'order_id',
        parent_key_column: 'id',
        on_erase: 'anonymize',
        guard_mode: 'scrub',
        has_index: true,
      },
      {
        table_name: 'app.orders',
        link: 'direct',
        subject_column: 'customer_id',
        parent_table: null,
        parent_fk_column: null,
        parent_key_column: null,
        on_erase: 'anonymize',
        guard_mode: 'scrub',
        has_index: true,
      },
    ]);
  });

  it('lists columns with their strategies and types', async () => {
    const { rows } = await db.query(
      `select column_name, data_type, erase, mask, category from pii.registered_columns where table_name = 'app.customers' order by column_name`,
    );
    expect(rows).toContainEqual({
      column_name: 'status',
      data_type: 'text',
      erase: 'set:DEACTIVATED',
      mask: 'clear',
      category: 'status',
    });
    expect(rows).toContainEqual({
      column_name: 'external_ref',
      data_type: 'uuid',
      erase: 'pseudonym',
      mask: 'hash',
      category: 'identifier',
    });
    expect(rows).toHaveLength(10);
  });

  it('keeps a rule when its column is renamed (rules are stored by attnum)', async () => {
    await db.query('alter table app.customers rename column notes to remarks');
    try {
      const { rows } = await db.query(
        `select column_name from pii.registered_columns where table_name = 'app.customers' and erase = 'null' and category = 'free_text'`,
      );
      expect(rows).toEqual([{ column_name: 'remarks' }]);
    } finally {
      await db.query('alter table app.customers rename column remarks to notes');
    }
  });
});

describe('lint', () => {
  it('lists the joins registered with unenforced_join (no foreign key backs them)', async () => {
    const { rows } = await db.query(
      `select severity, table_name, column_name, problem from pii.lint() where problem ~ 'unenforced' order by table_name`,
    );
    expect(rows).toEqual(
      ['app.events', 'app.loyalty_points'].map((t) => ({
        severity: 'warning',
        table_name: t,
        column_name: 'customer_id',
        problem:
          'unenforced join to app.customers: no foreign key backs it, so Lethe cannot tell who else owns these rows',
      })),
    );
  });

  it('reports the subject column without an index, and registration warned about it', async () => {
    const { rows } = await db.query(
      `select severity, table_name, column_name, hint from pii.lint() where problem ~ 'index'`,
    );
    expect(rows).toEqual([
      {
        severity: 'warning',
        table_name: 'app.loyalty_points',
        column_name: 'customer_id',
        hint: 'create index on app.loyalty_points (customer_id)',
      },
    ]);
    const client = await db.pool.connect();
    const warnings: string[] = [];
    client.on('notice', (n) => warnings.push(`${n.severity}: ${n.message}`));
    try {
      await client.query(
        `select pii.register_table('app.loyalty_points', 'customer_id', 'delete', unenforced_join => true)`,
      );
    } finally {
      client.release();
    }
    expect(warnings).toContain(
      'WARNING: no index on app.loyalty_points.customer_id: every erasure will scan the table',
    );
  });

  it('unregisters a dropped table and the tables registered through it', async () => {
    await db.query(
      `create table app.gone (id bigint primary key, customer_id bigint); create index on app.gone (customer_id)`,
    );
    await db.query(
      `create table app.gone_child (id bigint primary key, gone_id bigint references app.gone (id)); create index on app.gone_child (gone_id)`,
    );
    await db.query(
      `select pii.register_table('app.gone', 'customer_id', 'delete', unenforced_join => true); select pii.register_child_table('app.gone_child', 'app.gone', 'gone_id')`,
    );
    await db.query(`drop table app.gone cascade`);
    const { rows } = await db.query(`select table_name from pii.registered_tables where table_name like 'app.gone%'`);
    expect(rows).toEqual([]);
    expect((await db.query(`select count(*)::int as n from pii.lint() where severity = 'error'`)).rows[0].n).toBe(0);
    await db.query(`drop table app.gone_child`);
  });

  it('reports an anonymize table with nothing to erase', async () => {
    await db.query(
      `create table app.notes_lint (id bigint primary key, customer_id bigint); create index on app.notes_lint (customer_id)`,
    );
    await db.query(`select pii.register_table('app.notes_lint', 'customer_id', 'anonymize', unenforced_join => true)`);
    const { rows } = await db.query(
      `select severity, problem from pii.lint() where table_name = 'app.notes_lint' and problem !~ 'unenforced'`,
    );
    expect(rows).toEqual([
      { severity: 'notice', problem: expect.stringMatching(/anonymize table with nothing to erase/) },
    ]);
    await db.query(`select pii.unregister_table('app.notes_lint')`);
  });
});

describe('validation: a bad registration raises a precise error and changes nothing', () => {
  let before: unknown;
  beforeEach(async () => {
    before = await registryState();
  });
  const unchanged = async () => expect(await registryState()).toEqual(before);

  it('unknown table', async () => {
    await expectPgError(
      db.query(`select pii.register_table('app.nope', 'customer_id', 'delete')`),
      '42P01',
      /relation "app\.nope" does not exist/,
    );
    await unchanged();
  });
  it('unknown column', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'nope', 'null')`),
      '42703',
      /column "nope" does not exist in table app\.customers/,
    );
    await expectPgError(
      db.query(`select pii.register_table('app.daily_revenue', 'customer_id', 'delete')`),
      '42703',
      /column "customer_id" does not exist in table app\.daily_revenue/,
    );
    await unchanged();
  });
  it('column of a table that is not registered', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.daily_revenue', 'revenue', 'null')`),
      '55000',
      /table app\.daily_revenue is not registered/,
    );
    await unchanged();
  });
  it('table with no path to the subject', async () => {
    await expectPgError(
      db.query(`select pii.register_child_table('app.daily_revenue', 'app.daily_revenue', 'orders')`),
      '55000',
      /no path from app\.daily_revenue to the subject: parent app\.daily_revenue is not registered/,
    );
    await unchanged();
  });
  it('null strategy on a NOT NULL column', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'status', 'null')`),
      '23502',
      /column app\.customers\.status is NOT NULL: erase strategy "null" cannot apply/,
    );
    await unchanged();
  });
  it('set:<literal> that does not cast to the column type', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'email_opt_out', 'set:maybe')`),
      '22P02',
      /erase strategy "set:maybe" does not cast to boolean \(column app\.customers\.email_opt_out\)/,
    );
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'birth_date', 'set:yesterdayish')`),
      '22P02',
      /does not cast to date/,
    );
    await unchanged();
  });
  it('jsonb_remove on a non-jsonb column, or with an empty key', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'notes', 'jsonb_remove:email')`),
      '42804',
      /erase strategy "jsonb_remove" needs a jsonb column; app\.customers\.notes is text/,
    );
    await expectPgError(
      db.query(`select pii.register_column('app.events', 'payload', 'jsonb_remove:email,')`),
      '22023',
      /has an empty key/,
    );
    await unchanged();
  });
  it('pseudonym on a column that cannot hold one', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'birth_date', 'pseudonym')`),
      '42804',
      /needs a text or uuid column/,
    );
    await db.query(
      `create table app.short_codes (id bigint primary key, customer_id bigint, code varchar(10)); create index on app.short_codes (customer_id)`,
    );
    await db.query(`select pii.register_table('app.short_codes', 'customer_id', 'anonymize', unenforced_join => true)`);
    await expectPgError(
      db.query(`select pii.register_column('app.short_codes', 'code', 'pseudonym')`),
      '22001',
      /too short for a pseudonym/,
    );
    await db.query(`select pii.unregister_table('app.short_codes')`);
  });
  it('unknown erase and mask strategy names', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'email', 'shred')`),
      '22023',
      /unknown erase strategy "shred" for column app\.customers\.email/,
    );
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'email', 'null', 'blur')`),
      '22023',
      /unknown mask strategy "blur"/,
    );
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'email', 'null', 'partial:x,2')`),
      '22023',
      /malformed/,
    );
    await expectPgError(
      db.query(`select pii.register_column('app.customers', 'phone', 'null', 'year')`),
      '42804',
      /needs a date or timestamp column/,
    );
    await unchanged();
  });
  it('unknown on_erase', async () => {
    await expectPgError(
      db.query(`select pii.register_table('app.daily_revenue', 'day', 'shred')`),
      '22023',
      /on_erase must be anonymize or delete, not "shred"/,
    );
    await unchanged();
  });
  it('an erase rule on the column that links rows to the subject', async () => {
    await expectPgError(
      db.query(`select pii.register_column('app.orders', 'customer_id', 'null')`),
      '22023',
      /links rows to their subject; its erase strategy must be keep/,
    );
    await unchanged();
  });
  it('a second subject table', async () => {
    await expectPgError(
      db.query(`select pii.register_subject_table('app.orders', 'id')`),
      '55000',
      /a subject table is already registered \(app\.customers\)/,
    );
    await unchanged();
  });
  it("Lethe's own and catalog tables", async () => {
    await expectPgError(
      db.query(`select pii.register_table('pii.audit', 'actor', 'delete')`),
      '42501',
      /in schema pii, which Lethe does not register/,
    );
    await expectPgError(
      db.query(`select pii.register_table('pg_catalog.pg_class', 'relname', 'delete')`),
      '42501',
      /in schema pg_catalog/,
    );
    await unchanged();
  });
  it('a cycle through parents', async () => {
    await expectPgError(
      db.query(`select pii.register_child_table('app.orders', 'app.order_items', 'id')`),
      '55000',
      /would make a cycle/,
    );
    await unchanged();
  });
});

describe('unregister', () => {
  it('refuses to orphan child tables, then removes rules', async () => {
    await expectPgError(db.query(`select pii.unregister_table('app.orders')`), '2BP01', /has registered child tables/);
    expect((await db.query(`select pii.unregister_column('app.customers', 'notes') as r`)).rows[0].r).toBe(true);
    expect((await db.query(`select pii.unregister_column('app.customers', 'notes') as r`)).rows[0].r).toBe(false);
    await db.query(`select pii.register_column('app.customers', 'notes', 'null', 'hide', 'free_text')`);
    await expectPgError(db.query(`select pii.unregister_subject_table()`), '2BP01', /other tables are registered/);
  });
});
