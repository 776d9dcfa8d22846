// Role grants (F13, F20): pii.grant_role / revoke_role and the masked-reader shortcuts
// validate their input, refuse what would defeat masking, and are audited;
// pii.security_lint finds what lets a masked reader around the masks.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP_ROLES } from '../src/db/groupRoles.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
const password = randomBytes(12).toString('hex');
const made: string[] = [];
let name = (suffix: string) => suffix;

async function role(suffix: string, options = 'login'): Promise<string> {
  const r = name(suffix);
  await db.query(`create role ${r} ${options} password '${password}'`);
  made.push(r);
  return r;
}

async function groupsOf(r: string): Promise<string[]> {
  const { rows } = await db.query(
    `select g.rolname::text as g from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles u on u.oid = m.member where u.rolname = $1 order by 1`,
    [r],
  );
  return rows.map((x) => x.g);
}

async function lint(): Promise<{ severity: string; object: string; problem: string; hint: string }[]> {
  return (await db.query(`select * from pii.security_lint()`)).rows;
}

beforeAll(async () => {
  db = await createTestDatabase('roles_grants');
  name = (suffix) => `${db.name}_${suffix}`;
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
});

afterAll(async () => {
  if (db) {
    for (const r of made) await db.query(`drop owned by ${r}`).catch(() => undefined);
    await db.drop();
  }
  for (const r of made) await admin(`drop role if exists ${r}`);
});

describe('pii.grant_role / pii.revoke_role', () => {
  it('pii_internal.group_roles() names the group roles TypeScript knows (src/db/groupRoles.ts, used by lethe doctor)', async () => {
    const { rows } = await db.query(`select pii_internal.group_roles() as r`);
    expect(rows[0].r).toEqual([...GROUP_ROLES]);
  });

  it('grants and revokes each of the five group roles, audited', async () => {
    const r = await role('multi');
    for (const g of GROUP_ROLES) {
      await db.query(`select pii.grant_role($1, $2)`, [g, r]);
    }
    expect(await groupsOf(r)).toEqual([
      'pii_admin',
      'pii_auditor',
      'pii_dispatcher',
      'pii_masked_reader',
      'pii_operator',
    ]);
    expect((await db.query(`select pii.revoke_role('pii_admin', $1) as ok`, [r])).rows[0].ok).toBe(true);
    expect((await db.query(`select pii.revoke_role('pii_admin', $1) as ok`, [r])).rows[0].ok).toBe(false);
    const { rows } = await db.query(
      `select action, details from pii.audit where action in ('grant_role', 'revoke_role') and details ->> 'role' = $1 order by id`,
      [r],
    );
    expect(rows).toHaveLength(6);
    expect(rows[5]).toEqual({ action: 'revoke_role', details: { group_role: 'pii_admin', role: r } });
  });

  it('refuses anything but the five group roles (22023)', async () => {
    const r = await role('target');
    await expectPgError(
      db.query(`select pii.grant_role('postgres', $1)`, [r]),
      '22023',
      /"postgres" is not a Lethe group role/,
    );
    await expectPgError(
      db.query(`select pii.grant_role('pg_read_all_data', $1)`, [r]),
      '22023',
      /not a Lethe group role/,
    );
    await expectPgError(db.query(`select pii.revoke_role('superuser', $1)`, [r]), '22023', /not a Lethe group role/);
    await expectPgError(db.query(`select pii.grant_role(null, $1)`, [r]), '22004', /must not be NULL/);
  });

  it('refuses an unknown role (42704), a group role or a predefined role as the grantee (22023)', async () => {
    await expectPgError(
      db.query(`select pii.grant_role('pii_operator', 'no_such_role_x9')`),
      '42704',
      /role "no_such_role_x9" does not exist/,
    );
    await expectPgError(db.query(`select pii.grant_masked_reader('no_such_role_x9')`), '42704', /does not exist/);
    await expectPgError(
      db.query(`select pii.grant_role('pii_admin', 'pii_masked_reader')`),
      '22023',
      /is a Lethe group role/,
    );
    await expectPgError(db.query(`select pii.grant_role('pii_operator', 'pg_monitor')`), '22023', /predefined role/);
  });

  it('refuses to make a superuser (or a BYPASSRLS role) a masked reader', async () => {
    const su = await role('su', 'login superuser');
    await expectPgError(
      db.query(`select pii.grant_masked_reader($1)`, [su]),
      '22023',
      /superuser or bypasses row level security/,
    );
  });

  it('an admin cannot grant Lethe roles to itself (42501)', async () => {
    const a = await role('selfadmin');
    await db.query(`select pii.grant_role('pii_admin', $1)`, [a]);
    const c = new pg.Client({ connectionString: connectAs(db.url, a, password) });
    await c.connect();
    try {
      await expectPgError(
        c.query(`select pii.grant_role('pii_dispatcher', $1)`, [a]),
        '42501',
        /cannot grant Lethe roles to itself/,
      );
      // … but may grant them to others.
      const other = await role('byadmin');
      await c.query(`select pii.grant_masked_reader($1)`, [other]);
      expect(await groupsOf(other)).toEqual(['pii_masked_reader']);
      // A masked reader cannot call any of it.
      const r = new pg.Client({ connectionString: connectAs(db.url, other, password) });
      await r.connect();
      try {
        await expectPgError(r.query(`select pii.grant_role('pii_admin', $1)`, [other]), '42501', /permission denied/);
      } finally {
        await r.end();
      }
    } finally {
      await c.end();
    }
  });
});

describe('pii.grant_masked_reader', () => {
  it('makes a login a masked reader who can read masked views and nothing of the base tables', async () => {
    const r = await role('support');
    await db.query(`select pii.grant_masked_reader($1)`, [r]);
    expect(await groupsOf(r)).toEqual(['pii_masked_reader']);
    const c = new pg.Client({ connectionString: connectAs(db.url, r, password) });
    await c.connect();
    try {
      expect((await c.query(`select email from masked.customers where id = 1`)).rows[0].email).toBe('u***@example.com');
      await expectPgError(c.query(`select email from app.customers`), '42501', /permission denied/);
    } finally {
      await c.end();
    }
    expect((await db.query(`select pii.revoke_masked_reader($1) as ok`, [r])).rows[0].ok).toBe(true);
    expect(await groupsOf(r)).toEqual([]);
  });

  it('refuses a role that can already read registered tables directly (22023)', async () => {
    const r = await role('leaky');
    await db.query(`grant usage on schema app to ${r}; grant select on app.orders to ${r}`);
    await expectPgError(
      db.query(`select pii.grant_masked_reader($1)`, [r]),
      '22023',
      new RegExp(`role "${r}" cannot be a masked reader: it can read registered tables directly \\(app.orders\\)`),
    );
    expect(await groupsOf(r)).toEqual([]);
  });
});

describe('pii.security_lint', () => {
  it('reports PUBLIC grants on registered tables and columns, with the fix', async () => {
    await db.query(`grant select on app.events to public; grant select (email) on app.customers to public`);
    try {
      const rows = (await lint()).filter((r) => r.severity === 'error' && /PUBLIC has/.test(r.problem));
      expect(rows).toContainEqual(
        expect.objectContaining({ object: 'app.events', hint: 'revoke SELECT on app.events from public;' }),
      );
      expect(rows).toContainEqual(
        expect.objectContaining({
          object: 'app.customers.email',
          hint: 'revoke SELECT (email) on app.customers from public;',
        }),
      );
    } finally {
      await db.query(`revoke select on app.events from public; revoke select (email) on app.customers from public`);
    }
    expect((await lint()).filter((r) => /PUBLIC has/.test(r.problem))).toEqual([]);
  });

  it('reports masked readers who can read registered tables directly, and privileged memberships', async () => {
    // Made a reader first, given SELECT afterwards: grant_role refuses the other order.
    const leaky = await role('leaky_later');
    await db.query(`select pii.grant_masked_reader($1)`, [leaky]);
    await db.query(`grant usage on schema app to ${leaky}; grant select on app.orders to ${leaky}`);
    const multi = name('multi');
    const rows = await lint();
    expect(rows).toContainEqual(
      expect.objectContaining({
        severity: 'error',
        object: 'app.orders',
        problem: `masked reader ${leaky} can read this registered table directly`,
      }),
    );
    expect(rows).toContainEqual(
      expect.objectContaining({
        severity: 'warning',
        object: multi,
        problem: expect.stringMatching(/also a member of pii_dispatcher/),
      }),
    );
  });

  it('reports a registered table without its masked view, and unclassified columns', async () => {
    await db.query(`drop view masked.loyalty_points`);
    try {
      const rows = await lint();
      expect(rows).toContainEqual({
        severity: 'warning',
        object: 'app.loyalty_points',
        problem: 'registered table has no masked view',
        hint: 'select * from pii.apply_masking();',
      });
      expect(rows).toContainEqual(expect.objectContaining({ severity: 'notice', object: 'app.orders.total' }));
    } finally {
      await db.query(`select * from pii.apply_masking()`);
    }
  });

  it('reports PUBLIC EXECUTE on a Lethe function and PUBLIC SELECT on a Lethe table', async () => {
    await db.query(
      `grant execute on function pii_internal.hmac(text) to public; grant select on pii.tombstones to public`,
    );
    try {
      const rows = await lint();
      expect(rows).toContainEqual(
        expect.objectContaining({ severity: 'error', object: 'function pii_internal.hmac(text)' }),
      );
      expect(rows).toContainEqual(expect.objectContaining({ severity: 'error', object: 'table pii.tombstones' }));
    } finally {
      await db.query(
        `revoke execute on function pii_internal.hmac(text) from public; revoke select on pii.tombstones from public`,
      );
    }
  });

  it('is for pii_admin and pii_auditor', async () => {
    const { rows } = await db.query(`
      select r, has_function_privilege(r, 'pii.security_lint()', 'execute') as ok
      from unnest(array['pii_admin', 'pii_auditor', 'pii_operator', 'pii_masked_reader', 'pii_dispatcher']) r order by r`);
    expect(Object.fromEntries(rows.map((x) => [x.r, x.ok]))).toEqual({
      pii_admin: true,
      pii_auditor: true,
      pii_dispatcher: false,
      pii_masked_reader: false,
      pii_operator: false,
    });
  });
});
