// Retention policies, erasure by query and legal holds (F16, F17, F22, F29) against a real
// PostgreSQL, with real LOGIN roles: the subject query runs with the caller's own rights,
// never Lethe's owner's.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorker } from '../src/api/index.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createLoginRoles, dropLoginRoles, type LoginRoles } from './helpers/loginRoles.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let roles: LoginRoles<'admin' | 'blind_admin' | 'operator' | 'auditor'>;
const as = (role: 'admin' | 'blind_admin' | 'operator' | 'auditor') => roles.as(role);

/** One checksum over every application table and Lethe's requests: equal = nothing changed. */
async function checksum(): Promise<string> {
  const { rows } = await db.query(`
    select md5(string_agg(x.t, '|' order by x.t)) as sum from (
      select 'c' || t::text as t from app.customers t union all select 'e' || t::text from app.events t
      union all select 'o' || t::text from app.orders t union all select 'i' || t::text from app.order_items t
      union all select 'g' || t::text from app.engravings t union all select 'l' || t::text from app.loyalty_points t
      union all select 'r' || id::text from pii.requests union all select 't' || encode(subject_hash, 'hex') from pii_internal.tombstones) x`);
  return rows[0].sum;
}

const range = (from: number, to: number) => `select c.id from app.customers c where c.id between ${from} and ${to}`;

beforeAll(async () => {
  db = await createTestDatabase('retention');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  roles = await createLoginRoles(db, ['admin', 'blind_admin', 'operator', 'auditor'] as const);
  const { admin, blind_admin, operator, auditor } = roles.names;
  await db.query(`
    grant pii_admin to ${admin}, ${blind_admin};
    grant pii_operator to ${operator};
    grant pii_auditor to ${auditor};
    grant usage on schema app to ${admin}, ${blind_admin}, ${operator}, ${auditor};
    grant select on all tables in schema app to ${admin}, ${operator};
    -- A pii_admin who may read the orders but not the customers.
    grant select on app.orders to ${blind_admin};
    -- A function that writes, to smuggle a write into a subject query.
    create table app.smuggled (id bigint);
    create function app.smuggle() returns bigint language sql as 'insert into app.smuggled values (1) returning id';
    grant insert on app.smuggled to ${admin};
    grant execute on function app.smuggle() to ${admin};`);
});

afterAll(async () => {
  await roles?.drop();
  await db?.drop();
  if (roles) await dropLoginRoles(Object.values(roles.names));
});

async function versions(name: string): Promise<number> {
  const { rows } = await db.query(
    'select count(*)::int as n from pii.retention_policy_versions where policy_name = $1',
    [name],
  );
  return rows[0].n;
}

async function enforce(name: string, role: 'operator' | 'admin' = 'admin') {
  const { rows } = await as(role).query('select * from pii.enforce_retention($1)', [name]);
  return rows[0];
}

describe('pii.set_retention_policy validates the query with the caller’s rights', () => {
  it('stores a valid query as version 1 and the same definition again as the same version', async () => {
    const sql = range(1, 3);
    expect(
      (await as('admin').query('select pii.set_retention_policy($1, $2, 5) as v', ['p-valid', sql])).rows[0].v,
    ).toBe(1);
    expect(
      (await as('admin').query('select pii.set_retention_policy($1, $2, 5) as v', ['p-valid', sql])).rows[0].v,
    ).toBe(1);
    expect(
      (await as('admin').query('select pii.set_retention_policy($1, $2, 6) as v', ['p-valid', sql])).rows[0].v,
    ).toBe(2);
  });

  const invalid: [string, string, string, RegExp][] = [
    ['a syntax error', 'selec c.id from app.customers c', '42601', /subject_query is invalid: syntax error/],
    ['a second statement', 'select c.id from app.customers c; delete from app.customers', '42601', /single SELECT/],
    ['a write through a function', 'select app.smuggle()::bigint', '25006', /must be read-only/],
    ['a data-modifying CTE', 'with d as (delete from app.customers returning id) select id from d', '0A000', /invalid/],
    [
      'the wrong key type',
      'select c.id::integer from app.customers c',
      '42804',
      /returns integer but the subject key is bigint/,
    ],
    ['an extra column', 'select c.id, c.email from app.customers c', '42P10', /more columns than expected/],
    ['an unknown table', 'select x.id from app.nope x', '42P01', /relation "app.nope" does not exist/],
    [
      'an error about a value (not quoted)',
      'select c.email::bigint from app.customers c',
      '22P02',
      /^subject_query failed with SQLSTATE 22P02$/,
    ],
    ['an empty query', '  ', '22023', /must not be empty/],
  ];
  for (const [what, sql, code, message] of invalid) {
    it(`refuses ${what} and stores nothing`, async () => {
      await expectPgError(
        as('admin').query('select pii.set_retention_policy($1, $2, 5)', ['p-bad', sql]),
        code,
        message,
      );
      expect(await versions('p-bad')).toBe(0);
    });
  }

  it('leaves nothing behind from a query that tried to write', async () => {
    expect((await db.query('select count(*)::int as n from app.smuggled')).rows[0].n).toBe(0);
  });

  it('refuses an unknown kind, a bad limit, mode or schedule', async () => {
    const call = (extra: string) =>
      as('admin').query(`select pii.set_retention_policy('p-args', $1, 5${extra})`, [range(1, 2)]);
    await expectPgError(
      call(`, kind => 'contacts'`),
      '22023',
      /unknown subject kind "contacts": this install has one kind, "customers"/,
    );
    await expectPgError(
      as('admin').query(`select pii.set_retention_policy('p-args', $1, 0)`, [range(1, 2)]),
      '22023',
      /max_subjects must be a positive integer/,
    );
    await expectPgError(call(`, mode => 'shred'`), '22023', /mode must be erase or delete/);
    await expectPgError(call(`, schedule => 'yearly'`), '22023', /schedule must be hourly, daily, weekly or monthly/);
    expect(
      (
        await as('admin').query(`select pii.set_retention_policy('p-args', $1, 5, kind => 'customers') as v`, [
          range(1, 2),
        ])
      ).rows[0].v,
    ).toBe(1);
  });

  it('a pii_admin cannot define a query over a table they cannot read (attack: read through Lethe’s owner)', async () => {
    await expectPgError(
      as('blind_admin').query('select pii.set_retention_policy($1, $2, 5)', ['p-blind', range(1, 3)]),
      '42501',
      /permission denied for table customers/,
    );
    expect(await versions('p-blind')).toBe(0);
  });

  it('a pii_admin cannot preview another admin’s policy over a table they cannot read', async () => {
    await expectPgError(
      as('blind_admin').query(`select * from pii.preview_retention('p-valid')`),
      '42501',
      /permission denied for table customers/,
    );
  });

  it('pii_operator and pii_auditor cannot define policies', async () => {
    for (const r of ['operator', 'auditor'] as const)
      await expectPgError(
        as(r).query('select pii.set_retention_policy($1, $2, 5)', ['p-op', range(1, 2)]),
        '42501',
        /permission denied for function set_retention_policy/,
      );
  });
});

describe('pii.preview_retention', () => {
  it('reports version, candidates, a sample of hashes and rows per table, writing only an audit row', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 10)', ['p-preview', range(1, 3)]);
    const before = await checksum();
    const audits = (await db.query(`select count(*)::int as n from pii.audit where action = 'preview_retention'`))
      .rows[0].n;
    const { rows } = await as('operator').query(`select * from pii.preview_retention('p-preview')`);
    expect(rows[0]).toMatchObject({ version: 1, candidates: '3', held: '0', max_subjects: 10, within_limit: true });
    expect(rows[0].sample).toHaveLength(3);
    for (const h of rows[0].sample) expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0].rows_to_change).toMatchObject({
      'app.customers': 3,
      'app.orders': 6,
      'app.events': 12,
      'app.loyalty_points': 9,
    });
    expect(await checksum()).toBe(before);
    expect(
      (await db.query(`select count(*)::int as n from pii.audit where action = 'preview_retention'`)).rows[0].n,
    ).toBe(audits + 1);
    expect(
      (await db.query(`select count(*)::int as n from pii.retention_runs where policy_name = 'p-preview'`)).rows[0].n,
    ).toBe(0);
  });
});

describe('pii.preview_retention in a read-only transaction', () => {
  let owners: string[];
  const previewReadOnly = async () => {
    const c = as('operator');
    await c.query('begin read only');
    try {
      return (await c.query(`select candidates, rows_to_change from pii.preview_retention('p-read-only')`)).rows[0];
    } finally {
      await c.query('rollback');
    }
  };
  const audits = async () =>
    (await db.query(`select count(*)::int as n from pii.audit where action = 'preview_retention'`)).rows[0].n;

  beforeAll(async () => {
    owners = ['new_owner', 'newer_owner'].map((o) => `${db.name}_${o}`);
    for (const owner of owners)
      await db.query(`create role ${owner}; grant ${owner} to current_user;
        grant usage on schema app to ${owner}; grant select on all tables in schema app to ${owner}`);
  });
  afterAll(async () => {
    await db.query('alter table app.loyalty_points owner to current_user');
    for (const owner of owners) await db.query(`drop owned by ${owner}; drop role ${owner}`);
  });

  it('works (no audit row) for a table whose owner changed since registration: setting the policy made its deputy', async () => {
    await db.query(`alter table app.loyalty_points owner to ${owners[0]}`);
    await as('admin').query('select pii.set_retention_policy($1, $2, 10)', ['p-read-only', range(1, 3)]);
    const before = await audits();
    const row = await previewReadOnly();
    expect(row.candidates).toBe('3');
    expect(row.rows_to_change['app.loyalty_points']).toBe(9);
    expect(await audits()).toBe(before);
  });

  it('names the owner that has no deputy yet (25006); a read-write preview makes it', async () => {
    await db.query(`alter table app.loyalty_points owner to ${owners[1]}`);
    await expectPgError(
      previewReadOnly(),
      '25006',
      new RegExp(`no deputy yet for role ${owners[1]}, which owns app\\.`),
    );
    const before = await audits();
    await as('operator').query(`select * from pii.preview_retention('p-read-only')`);
    expect(await audits()).toBe(before + 1);
    expect((await previewReadOnly()).rows_to_change['app.loyalty_points']).toBe(9);
  });
});

describe('pii.approve_retention and pii.enforce_retention', () => {
  it('refuses an unapproved version: the run is recorded, nothing is requested', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 10)', ['p-unapproved', range(4, 5)]);
    const before = await checksum();
    expect(await enforce('p-unapproved')).toMatchObject({ outcome: 'unapproved', request_id: null });
    expect(await checksum()).toBe(before);
  });

  it('only pii_admin approves, and only the current version', async () => {
    await expectPgError(
      as('operator').query(`select pii.approve_retention('p-unapproved', 1)`),
      '42501',
      /permission denied for function approve_retention/,
    );
    await expectPgError(
      as('admin').query(`select pii.approve_retention('p-unapproved', 2)`),
      '55000',
      /is at version 1, not 2/,
    );
    await expectPgError(
      as('admin').query(`select pii.approve_retention('p-none', 1)`),
      '42704',
      /retention policy "p-none" does not exist/,
    );
    await as('admin').query(`select pii.approve_retention('p-unapproved', 1)`);
    const { rows } = await db.query(
      `select approved_by::text from pii.retention_policy_versions where policy_name = 'p-unapproved'`,
    );
    expect(rows[0].approved_by).toBe(roles.names.admin);
    expect(
      (await db.query(`select count(*)::int as n from pii.audit where action = 'approve_retention'`)).rows[0].n,
    ).toBe(1);
  });

  it('a change makes a new version that needs approval again', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 11)', ['p-unapproved', range(4, 5)]);
    expect(await enforce('p-unapproved')).toMatchObject({ version: 2, outcome: 'unapproved' });
  });

  it('under the limit: one request with source retention:<name>; a second run in the period returns the same one', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 5)', ['p-under', range(11, 12)]);
    await as('admin').query(`select pii.approve_retention('p-under', 1)`);
    const first = await enforce('p-under');
    expect(first).toMatchObject({ outcome: 'requested', candidates: '2', held: '0' });
    const { rows } = await db.query('select source, total, mode from pii.requests where id = $1', [first.request_id]);
    expect(rows[0]).toEqual({ source: 'retention:p-under', total: '2', mode: 'erase' });
    const second = await enforce('p-under');
    expect(second).toMatchObject({ outcome: 'already_requested', request_id: first.request_id });
    expect(
      (await db.query(`select count(*)::int as n from pii.requests where source = 'retention:p-under'`)).rows[0].n,
    ).toBe(1);
  });

  it('at the limit: requested', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 3)', ['p-at', range(13, 15)]);
    await as('admin').query(`select pii.approve_retention('p-at', 1)`);
    expect(await enforce('p-at')).toMatchObject({ outcome: 'requested', candidates: '3' });
  });

  it('over the limit: 0 rows changed, a notification and NOTIFY pii_notification, the run recorded as blocked', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 2)', ['p-over', range(16, 18)]);
    await as('admin').query(`select pii.approve_retention('p-over', 1)`);
    const listener = new pg.Client(db.url);
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('listen pii_notification');
    try {
      const before = await checksum();
      expect(await enforce('p-over')).toMatchObject({ outcome: 'blocked', candidates: '3', request_id: null });
      expect(await checksum()).toBe(before);
      const { rows } = await db.query(`select kind, details from pii.notifications where policy_name = 'p-over'`);
      expect(rows).toEqual([
        { kind: 'retention_blocked', details: expect.objectContaining({ candidates: 3, max_subjects: 2 }) },
      ]);
      for (let i = 0; i < 50 && heard.length === 0; i++) await sleep(20);
      expect(JSON.parse(heard[0]!)).toMatchObject({
        kind: 'retention_blocked',
        policy: 'p-over',
        candidates: 3,
        max_subjects: 2,
      });
    } finally {
      await listener.end();
    }
    // Raising the limit (a new version, approved) lets the next run through.
    await as('admin').query('select pii.set_retention_policy($1, $2, 3)', ['p-over', range(16, 18)]);
    await as('admin').query(`select pii.approve_retention('p-over', 2)`);
    expect(await enforce('p-over')).toMatchObject({ version: 2, outcome: 'requested', candidates: '3' });
  });

  it('records every run in pii.retention_history, readable by pii_auditor', async () => {
    const { rows } = await as('auditor').query(
      `select version, outcome, candidates from pii.retention_history where policy_name = 'p-over' order by id`,
    );
    expect(rows).toEqual([
      { version: 1, outcome: 'blocked', candidates: '3' },
      { version: 2, outcome: 'requested', candidates: '3' },
    ]);
    await expectPgError(
      as('auditor').query(`select * from pii.enforce_retention('p-over')`),
      '42501',
      /permission denied/,
    );
  });

  it('the scheduled run (no name) takes enabled policies only, once per period', async () => {
    await as('admin').query(`select pii.set_retention_policy($1, $2, 5, enabled => true)`, [
      'p-enabled',
      range(19, 20),
    ]);
    await as('admin').query(`select pii.approve_retention('p-enabled', 1)`);
    const { rows } = await as('admin').query('select policy_name, outcome from pii.enforce_retention()');
    expect(rows).toEqual([{ policy_name: 'p-enabled', outcome: 'requested' }]);
    expect((await as('admin').query('select * from pii.enforce_retention()')).rows).toEqual([]);
  });
});

describe('a stored query runs only with rights its author has', () => {
  it('refuses to run, for a more privileged role, a query its author could not run (attack: store it unvalidated and let the worker run it)', async () => {
    // blind_admin cannot read app.customers; the definer step stores the query unvalidated.
    await as('blind_admin').query(
      `select pii.store_retention_version('p-smuggled', $1, 'bigint', 5, null, 'erase', 'daily', true)`,
      [range(28, 29)],
    );
    await as('blind_admin').query(`select pii.approve_retention('p-smuggled', 1)`);
    const before = await checksum();
    await expectPgError(
      as('operator').query(`select * from pii.enforce_retention('p-smuggled')`),
      '42501',
      /was defined by .*blind_admin, who does not have the rights of .*operator/,
    );
    const { rows } = await as('operator').query(`select policy_name, outcome, candidates from pii.enforce_retention()`);
    expect(rows).toContainEqual({ policy_name: 'p-smuggled', outcome: 'refused', candidates: null });
    expect(await checksum()).toBe(before);
    // Its author, running it, has only their own rights.
    await expectPgError(
      as('blind_admin').query(`select * from pii.enforce_retention('p-smuggled')`),
      '42501',
      /permission denied for table customers/,
    );
  });
});

describe('pii.request_erasure_from_query', () => {
  it('dry run: the count and rows per table, nothing changed (checksums)', async () => {
    const before = await checksum();
    const { rows } = await as('operator').query(
      `select * from pii.request_erasure_from_query($1, 5, dry_run => true)`,
      [range(21, 22)],
    );
    expect(rows[0]).toMatchObject({ request_id: null, subjects: '2' });
    expect(rows[0].rows_to_change).toMatchObject({ 'app.customers': 2 });
    expect(await checksum()).toBe(before);
  });

  it('above max_subjects: 54000, nothing changed', async () => {
    const before = await checksum();
    await expectPgError(
      as('operator').query(`select * from pii.request_erasure_from_query($1, 1)`, [range(21, 22)]),
      '54000',
      /selects 2 subjects, more than max_subjects \(1\): nothing was requested/,
    );
    expect(await checksum()).toBe(before);
  });

  it('files one request (source query), idempotent on request_key', async () => {
    const call = () =>
      as('operator').query(`select * from pii.request_erasure_from_query($1, 5, request_key => 'seg-7')`, [
        range(21, 22),
      ]);
    const id = (await call()).rows[0].request_id;
    expect((await call()).rows[0].request_id).toBe(id);
    expect((await db.query('select source, total from pii.requests where id = $1', [id])).rows[0]).toEqual({
      source: 'query',
      total: '2',
    });
  });

  it('validates like a policy: wrong type, writes, unknown kind', async () => {
    await expectPgError(
      as('operator').query(`select * from pii.request_erasure_from_query('select 1', 5)`),
      '42804',
      /returns integer/,
    );
    await expectPgError(
      as('operator').query(`select * from pii.request_erasure_from_query($1, 5, kind => 'contacts')`, [range(1, 2)]),
      '22023',
      /unknown subject kind/,
    );
  });
});

describe('legal holds', () => {
  let holdId: string;

  it('pii.place_hold by pii_admin; pii.holds shows hashes only, to pii_auditor and pii_admin', async () => {
    const { rows } = await as('admin').query(
      `select pii.place_hold(array['23', '24'], 'invoices: tax retention', current_date + 20, array['app.orders'::regclass]) as id`,
    );
    holdId = rows[0].id;
    const view = (await as('auditor').query('select * from pii.holds where hold_id = $1', [holdId])).rows[0];
    expect(view).toMatchObject({ status: 'active', days_left: 20, tables: ['app.orders'], subjects: 2 });
    expect(view.subject_hashes).toHaveLength(2);
    expect(JSON.stringify(view)).not.toMatch(/"2[34]"/);
    await expectPgError(as('operator').query('select * from pii.holds'), '42501', /permission denied for view holds/);
    await expectPgError(
      as('operator').query(`select pii.place_hold(array['1'], 'x', current_date + 1)`),
      '42501',
      /permission denied for function place_hold/,
    );
  });

  it('refuses bad holds: no reason, a past date, an unregistered table', async () => {
    await expectPgError(
      as('admin').query(`select pii.place_hold(array['1'], ' ', current_date + 5)`),
      '22023',
      /needs a reason/,
    );
    await expectPgError(
      as('admin').query(`select pii.place_hold(array['1'], 'x', current_date)`),
      '22023',
      /must be a date after today/,
    );
    await expectPgError(
      as('admin').query(
        `select pii.place_hold(array['1'], 'x', current_date + 5, array['app.daily_revenue'::regclass])`,
      ),
      '22023',
      /app.daily_revenue is not registered/,
    );
  });

  it('retention leaves held subjects out and counts them', async () => {
    await as('admin').query('select pii.set_retention_policy($1, $2, 5)', ['p-held', range(23, 25)]);
    const { rows } = await as('operator').query(`select candidates, held from pii.preview_retention('p-held')`);
    expect(rows[0]).toEqual({ candidates: '1', held: '2' });
    await as('admin').query(`select pii.approve_retention('p-held', 1)`);
    const run = await enforce('p-held');
    expect(run).toMatchObject({ outcome: 'requested', candidates: '1', held: '2' });
    expect((await db.query('select total from pii.requests where id = $1', [run.request_id])).rows[0].total).toBe('1');
  });

  it('pii.hold_tick: notices 30, 7 and 1 days before, each once, then hold_expired', async () => {
    const tick = async (days: number) =>
      (
        await as('operator').query(
          `select notice, days_left from pii.hold_tick(current_date + $1::int) where hold_id = $2`,
          [days, holdId],
        )
      ).rows;
    expect(await tick(0)).toEqual([{ notice: 'hold_expiring', days_left: 20 }]);
    expect(await tick(1)).toEqual([]);
    expect(await tick(14)).toEqual([{ notice: 'hold_expiring', days_left: 6 }]);
    expect(await tick(19)).toEqual([{ notice: 'hold_expiring', days_left: 1 }]);
    expect(await tick(19)).toEqual([]);
    expect(await tick(21)).toEqual([{ notice: 'hold_expired', days_left: null }]);
    const { rows } = await db.query(`select kind, details from pii.notifications where hold_id = $1 order by id`, [
      holdId,
    ]);
    expect(rows.map((r) => `${r.kind}:${r.details.notice ?? ''}`)).toEqual([
      'hold_expiring:30 days',
      'hold_expiring:7 days',
      'hold_expiring:1 days',
      'hold_expired:',
    ]);
  });

  it('pii.release_hold ends a hold; releasing twice is refused', async () => {
    const { rows } = await as('admin').query(`select pii.place_hold(array['25'], 'dispute', current_date + 90) as id`);
    await as('admin').query('select pii.release_hold($1)', [rows[0].id]);
    expect(
      (await as('admin').query('select status from pii.holds where hold_id = $1', [rows[0].id])).rows[0].status,
    ).toBe('released');
    await expectPgError(as('admin').query('select pii.release_hold($1)', [rows[0].id]), '55000', /already released/);
    const { rows: preview } = await as('operator').query(
      `select candidates, held from pii.preview_retention('p-held')`,
    );
    expect(preview[0]).toEqual({ candidates: '1', held: '2' });
  });
});

describe('scheduling (graphile-worker crontab)', () => {
  it('the worker’s crontab runs lethe_enforce_retention and the request it files is processed', async () => {
    // Defined by the role the worker logs in as: a query runs only with rights its author has.
    await db.query(`select pii.set_retention_policy($1, $2, 5, enabled => true, schedule => 'hourly')`, [
      'p-cron',
      range(26, 27),
    ]);
    await as('admin').query(`select pii.approve_retention('p-cron', 1)`);
    // Known since three hours ago, so the worker backfills the last hourly run at start
    // (the crontab says fill=1h) instead of waiting for the next hour.
    await db.query(
      `insert into graphile_worker._private_known_crontabs (identifier, known_since)
       values ('lethe_enforce_retention', now() - interval '3 hours')
       on conflict (identifier) do update set known_since = excluded.known_since, last_execution = null`,
    );
    const logs: string[] = [];
    const worker = await runWorker({
      connectionString: db.url,
      pollInterval: 100,
      log: (l, m) => logs.push(`${l}: ${m}`),
    });
    try {
      let run: { outcome: string; request_id: string } | undefined;
      for (let i = 0; i < 300 && !run; i++) {
        run = (await db.query(`select outcome, request_id from pii.retention_runs where policy_name = 'p-cron'`))
          .rows[0];
        if (!run) await sleep(100);
      }
      expect(run).toMatchObject({ outcome: 'requested' });
      let status = '';
      for (let i = 0; i < 300 && status !== 'done'; i++) {
        status = (await db.query('select status from pii.requests where id = $1', [run!.request_id])).rows[0].status;
        if (status !== 'done') await sleep(100);
      }
      expect(status).toBe('done');
      expect(logs.some((l) => l.includes('retention p-cron v1: requested'))).toBe(true);
    } finally {
      await worker.stop();
    }
  });
});
