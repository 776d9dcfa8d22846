// Permissions (F20) with real LOGIN roles over real connections: pii_operator requests and
// follows erasures, pii_auditor reads status and audit, pii_admin registers, and a role
// with none of them gets "permission denied" on every pii function and table.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
const password = randomBytes(12).toString('hex');
const roles = { operator: '', auditor: '', admin: '', plain: '' };
const clients: Partial<Record<keyof typeof roles, pg.Client>> = {};
let doneRequest: string;

function as(role: keyof typeof roles): pg.Client {
  const c = clients[role];
  if (!c) throw new Error(`no client for ${role}`);
  return c;
}

beforeAll(async () => {
  db = await createTestDatabase('permissions');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  for (const r of Object.keys(roles) as (keyof typeof roles)[]) roles[r] = `${db.name}_${r}`;
  // LOGIN roles are cluster-wide: unique names, dropped in afterAll.
  for (const name of Object.values(roles)) await db.query(`create role ${name} login password '${password}'`);
  await db.query(`
    grant pii_operator to ${roles.operator};
    grant pii_auditor to ${roles.auditor};
    grant pii_admin to ${roles.admin};
    -- Everyone is an application role with access to the application's tables.
    grant usage on schema app to ${roles.operator}, ${roles.auditor}, ${roles.admin}, ${roles.plain};
    grant select, insert, update on all tables in schema app to ${roles.operator}, ${roles.auditor}, ${roles.admin}, ${roles.plain};
    create table app.newsletter (id bigint primary key, customer_id bigint not null, email text);
    create index on app.newsletter (customer_id);
    -- Registering it lets Lethe erase and guard it in the admin's name: it needs all four.
    grant select, update, delete, trigger on app.newsletter to ${roles.admin};`);
  doneRequest = (await db.query(`select pii.request_erasure(array['1']) as id`)).rows[0].id;
  while ((await db.query('select pii.process_request_chunk($1) as n', [doneRequest])).rows[0].n > 0);
  await db.query('select pii.finish_request($1)', [doneRequest]);

  for (const r of Object.keys(roles) as (keyof typeof roles)[]) {
    const c = new pg.Client({ connectionString: connectAs(db.url, roles[r], password), application_name: `perm-${r}` });
    await c.connect();
    clients[r] = c;
  }
});

afterAll(async () => {
  for (const c of Object.values(clients)) await c?.end().catch(() => undefined);
  if (!db) return;
  for (const name of Object.values(roles)) if (name) await db.query(`drop owned by ${name}`).catch(() => undefined);
  await db.drop();
  for (const name of Object.values(roles)) if (name) await admin(`drop role if exists ${name}`);
});

describe('real LOGIN roles', () => {
  it('connect as themselves (not as the superuser)', async () => {
    for (const r of Object.keys(roles) as (keyof typeof roles)[]) {
      const { rows } = await as(r).query(
        'select session_user::text as u, (select rolsuper from pg_roles where rolname = session_user) as su',
      );
      expect(rows[0]).toEqual({ u: roles[r], su: false });
    }
  });
});

describe('pii_operator', () => {
  it('requests an erasure, follows it and verifies it', async () => {
    const op = as('operator');
    const { rows } = await op.query(`select pii.request_erasure(array['2', '3'], request_key => 'op-1') as id`);
    const id = rows[0].id;
    expect((await op.query('select id, status, total from pii.request_status($1)', [id])).rows).toEqual([
      { id, status: 'queued', total: '2' },
    ]);
    expect((await op.query('select count(*)::int as n from pii.request_items($1)', [id])).rows[0].n).toBe(2);
    while ((await op.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
    expect((await op.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');
    expect((await op.query('select * from pii.verify_erasure($1)', [id])).rows).toEqual([]);
    expect((await op.query(`select erased from pii.was_erased('2')`)).rows[0].erased).toBe(true);
    expect(
      (await op.query('select requested_by::text from pii.requests where id = $1', [id])).rows[0].requested_by,
    ).toBe(roles.operator);
    expect((await op.query('select count(*)::int as n from pii.overdue_requests')).rows[0].n).toBe(0);
    const { rows: audit } = await db.query(
      `select distinct actor::text, application from pii.audit where request_id = $1`,
      [id],
    );
    expect(audit).toEqual([{ actor: roles.operator, application: 'perm-operator' }]);
  });

  it('stages a CSV import and turns it into a request', async () => {
    const op = as('operator');
    const importId = '6f1c2a52-54f4-4b8e-9a64-3d7c8a1f0b11';
    await op.query(
      `insert into pii.import_rows (import_id, row_number, subject_key) values ($1, 2, '4'), ($1, 3, '5')`,
      [importId],
    );
    const { rows } = await op.query('select pii.request_erasure_from_import($1) as id', [importId]);
    expect((await op.query('select total, source from pii.request_status($1)', [rows[0].id])).rows[0]).toEqual({
      total: '2',
      source: 'csv',
    });
    // It may stage rows but not read them back.
    await expectPgError(op.query('select * from pii.import_rows'), '42501', /permission denied for table import_rows/);
  });

  it('erases now with erase_subjects', async () => {
    const { rows } = await as('operator').query(`select table_name, rows_affected from pii.erase_subjects(array['6'])`);
    expect(rows.find((r) => r.table_name === 'app.customers')).toEqual({
      table_name: 'app.customers',
      rows_affected: '1',
    });
  });

  const denied: [string, string, RegExp][] = [
    ['read pii_internal.secret', 'select * from pii_internal.secret', /permission denied for schema pii_internal/],
    [
      'read pii_internal.request_items (the table)',
      'select * from pii_internal.request_items',
      /permission denied for schema pii_internal/,
    ],
    [
      'read pii_internal.tombstones',
      'select * from pii_internal.tombstones',
      /permission denied for schema pii_internal/,
    ],
    [
      'read pii_internal.request_residuals',
      'select * from pii_internal.request_residuals',
      /permission denied for schema pii_internal/,
    ],
    ['read pii.audit', 'select * from pii.audit', /permission denied for table audit/],
    ['write pii.audit', `insert into pii.audit (action) values ('forged')`, /permission denied for table audit/],
    ['change a request', `update pii.requests set status = 'done'`, /permission denied for table requests/],
    ['change the settings', `update pii.settings set chunk_size = 1`, /permission denied for table settings/],
    ['call pii_internal.hmac', `select pii_internal.hmac('x')`, /permission denied for schema pii_internal/],
    [
      'call pii_internal.subject_hash',
      `select pii_internal.subject_hash(null, '1')`,
      /permission denied for schema pii_internal/,
    ],
    [
      'call an internal engine function',
      `select * from pii_internal.erase_resolved(array['1'], null, 'erase')`,
      /permission denied for schema pii_internal/,
    ],
    [
      'register a table',
      `select pii.register_table('app.newsletter', 'customer_id', 'delete', unenforced_join => true)`,
      /permission denied for function register_table/,
    ],
    ['change a guard', `select pii.set_guard('app.orders', 'off')`, /permission denied for function set_guard/],
  ];
  for (const [what, sql, message] of denied) {
    it(`cannot ${what} (42501)`, async () => {
      await expectPgError(as('operator').query(sql), '42501', message);
    });
  }
});

describe('pii_auditor', () => {
  it('reads the audit trail, request status, items, overdue list and verification', async () => {
    const au = as('auditor');
    expect((await au.query('select count(*)::int as n from pii.audit')).rows[0].n).toBeGreaterThan(20);
    expect((await au.query('select status from pii.request_status($1)', [doneRequest])).rows[0].status).toBe('done');
    expect((await au.query('select count(*)::int as n from pii.request_items($1)', [doneRequest])).rows[0].n).toBe(1);
    expect((await au.query('select * from pii.verify_erasure($1)', [doneRequest])).rows).toEqual([]);
    expect((await au.query('select count(*)::int as n from pii.overdue_requests')).rows[0].n).toBe(0);
    expect((await au.query(`select erased from pii.was_erased('1')`)).rows[0].erased).toBe(true);
  });

  const denied: [string, string, RegExp][] = [
    ['request an erasure', `select pii.request_erasure(array['7'])`, /permission denied for function request_erasure/],
    ['erase now', `select * from pii.erase_subjects(array['7'])`, /permission denied for function erase_subjects/],
    [
      'process a chunk',
      `select pii.process_request_chunk('${'00000000-0000-0000-0000-000000000000'}')`,
      /permission denied for function process_request_chunk/,
    ],
    ['lift a tombstone', `select pii.allow_return('1')`, /permission denied for function allow_return/],
    ['change the audit trail', `delete from pii.audit`, /permission denied for table audit/],
    ['read pii_internal.secret', 'select * from pii_internal.secret', /permission denied for schema pii_internal/],
    [
      'read pii_internal.tombstones',
      'select * from pii_internal.tombstones',
      /permission denied for schema pii_internal/,
    ],
    [
      'read pii_internal.request_items (the table)',
      'select * from pii_internal.request_items',
      /permission denied for schema pii_internal/,
    ],
    [
      'stage an import',
      `insert into pii.import_rows values (gen_random_uuid(), 1, '7')`,
      /permission denied for table import_rows/,
    ],
  ];
  for (const [what, sql, message] of denied) {
    it(`cannot ${what} (42501)`, async () => {
      await expectPgError(as('auditor').query(sql), '42501', message);
    });
  }
  it('requested nothing: subject 7 was never flagged', async () => {
    expect((await db.query(`select erased, flagged_at from pii.was_erased('7')`)).rows[0]).toEqual({
      erased: false,
      flagged_at: null,
    });
  });
});

describe('a role with no Lethe group', () => {
  const attempts: [string, string][] = [
    ['pii.request_erasure', `select pii.request_erasure(array['8'])`],
    ['pii.erase_subjects', `select * from pii.erase_subjects(array['8'])`],
    ['pii.request_status', `select * from pii.request_status('00000000-0000-0000-0000-000000000000')`],
    ['pii.verify_erasure', `select * from pii.verify_erasure('00000000-0000-0000-0000-000000000000')`],
    ['pii.was_erased', `select * from pii.was_erased('1')`],
    ['pii.allow_return', `select pii.allow_return('1')`],
    ['pii_internal.hmac', `select pii_internal.hmac('x')`],
    ['pii.audit', 'select * from pii.audit'],
    ['pii_internal.secret', 'select * from pii_internal.secret'],
    ['pii_internal.tombstones', 'select * from pii_internal.tombstones'],
    ['pii_internal.request_items', 'select * from pii_internal.request_items'],
    ['pii.requests', 'select * from pii.requests'],
    ['pii.settings', 'select * from pii.settings'],
    ['pii.registered_columns', 'select * from pii.registered_columns'],
    ['pii.import_rows', `insert into pii.import_rows values ('00000000-0000-0000-0000-000000000000', 1, '8')`],
  ];
  for (const [what, sql] of attempts) {
    it(`gets permission denied on ${what}`, async () => {
      await expectPgError(as('plain').query(sql), '42501', /permission denied/);
    });
  }

  it('still goes through the guards when it writes to registered tables (they run as Lethe)', async () => {
    await as('plain').query(`update app.customers set email = 'back@example.com', first_name = 'Back' where id = 1`);
    expect((await db.query('select email, first_name from app.customers where id = 1')).rows[0]).toEqual({
      email: null,
      first_name: null,
    });
    await db.query(`select pii.set_guard('app.customers', 'reject')`);
    try {
      await expectPgError(
        as('plain').query(`update app.customers set email = 'back@example.com' where id = 1`),
        'PII01',
        /cannot be re-ingested/,
      );
    } finally {
      await db.query(`select pii.set_guard('app.customers', 'scrub')`);
    }
  });

  it('requested nothing: subject 8 was never flagged', async () => {
    expect((await db.query(`select erased, flagged_at from pii.was_erased('8')`)).rows[0]).toEqual({
      erased: false,
      flagged_at: null,
    });
  });

  // Guards have no switch a session could flip: a setting named like an old bypass changes nothing.
  it('cannot switch the guards off with a session setting', async () => {
    const plain = as('plain');
    await plain.query('set lethe.guard_bypass = on');
    try {
      await plain.query(`update app.customers set email = 'bypass@example.com' where id = 1`);
    } finally {
      await plain.query('reset lethe.guard_bypass');
      const { rows } = await db.query('select email from app.customers where id = 1');
      await db.query(`select * from pii.erase_subjects(array['1'])`);
      expect(rows[0].email).toBeNull();
    }
  });
});

describe('pii_admin', () => {
  it('registers tables and columns and sets guards', async () => {
    const ad = as('admin');
    await ad.query(`select pii.register_table('app.newsletter', 'customer_id', 'delete', unenforced_join => true)`);
    await ad.query(`select pii.register_column('app.newsletter', 'email', 'null', 'email', 'contact')`);
    await ad.query(`select pii.set_guard('app.newsletter', 'reject')`);
    const { rows } = await ad.query(
      `select table_name, on_erase, guard_mode from pii.registered_tables where table_name = 'app.newsletter'`,
    );
    expect(rows).toEqual([{ table_name: 'app.newsletter', on_erase: 'delete', guard_mode: 'reject' }]);
    const { rows: audit } = await db.query(
      `select action, actor::text from pii.audit where details ->> 'table' = 'app.newsletter' order by id`,
    );
    expect(audit).toEqual([
      { action: 'register_table', actor: roles.admin },
      { action: 'register_column', actor: roles.admin },
      { action: 'set_guard', actor: roles.admin },
    ]);
  });

  it('cannot register a table it cannot read itself (42501)', async () => {
    await db.query('create table app.secret_notes (id bigint primary key, customer_id bigint, note text)');
    await db.query(`revoke all on app.secret_notes from ${roles.admin}`);
    await expectPgError(
      as('admin').query(
        `select pii.register_table('app.secret_notes', 'customer_id', 'delete', unenforced_join => true)`,
      ),
      '42501',
      new RegExp(`${roles.admin} cannot read table app\\.secret_notes`),
    );
  });

  it('is also an operator and an auditor, but still cannot read the key', async () => {
    const ad = as('admin');
    const { rows } = await ad.query(`select pii.request_erasure(array['9']) as id`);
    expect((await ad.query('select status from pii.request_status($1)', [rows[0].id])).rows[0].status).toBe('queued');
    expect((await ad.query('select count(*)::int as n from pii.audit')).rows[0].n).toBeGreaterThan(0);
    await expectPgError(
      ad.query('select * from pii_internal.secret'),
      '42501',
      /permission denied for schema pii_internal/,
    );
  });
});

describe('the catalog', () => {
  it('grants PUBLIC execute on no function in schema pii', async () => {
    const { rows } = await db.query(
      `select p.oid::regprocedure::text as fn from pg_proc p
       where p.pronamespace = 'pii'::regnamespace
         and (p.proacl is null or exists (select from aclexplode(p.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE'))
       order by 1`,
    );
    expect(rows).toEqual([]);
  });

  it('grants PUBLIC nothing on any table or view in schema pii', async () => {
    const { rows } = await db.query(
      `select c.oid::regclass::text as rel from pg_class c
       where c.relnamespace = 'pii'::regnamespace and c.relkind in ('r', 'v', 'p', 'm')
         and exists (select from aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a where a.grantee = 0)
       order by 1`,
    );
    expect(rows).toEqual([]);
  });
});
