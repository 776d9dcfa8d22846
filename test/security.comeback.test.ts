// Security, part B (issue 11, attacks 5-12): erased people must not come back. Each test
// is one attack, made by a real LOGIN role over its own connection: the application's
// table owner (who also runs the sync, with the right to set session_replication_role),
// a pii_operator and a pii_auditor. Each asserts the secure outcome: whatever the attack,
// no PII of an erased subject is in the application's tables afterwards (or the attack
// is refused), and pii.verify_erasure agrees.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const password = randomBytes(12).toString('hex');
const suffix = randomBytes(4).toString('hex');
/** Cluster-wide LOGIN roles, one set for the three databases of this file. */
const roles = {
  owner: `lethe_secb_owner_${suffix}`,
  operator: `lethe_secb_op_${suffix}`,
  auditor: `lethe_secb_aud_${suffix}`,
};

let crm: TestDatabase;
let contacts: TestDatabase;
let ci: TestDatabase;
const clients: pg.Client[] = [];
/** Connections by database and role. */
let owner: pg.Client;
let operator: pg.Client;
let auditor: pg.Client;
let requestId: string;

/** Erased by the request made in beforeAll: one subject per attack (1001 has no row). */
const ERASED = [11, 12, 13, 14, 15, 16, 17, 18, 1001];

async function connect(db: TestDatabase, role: string, name: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: connectAs(db.url, role, password), application_name: name });
  await c.connect();
  clients.push(c);
  return c;
}

/** The application's schema and every table in it belong to the owner role. */
async function handOver(db: TestDatabase, schema: string): Promise<void> {
  await db.query(`
    alter schema ${schema} owner to ${roles.owner};
    do $$ declare r record; begin
      for r in select c.oid::regclass as t from pg_class c where c.relnamespace = '${schema}'::regnamespace and c.relkind in ('r', 'p') loop
        execute format('alter table %s owner to %I', r.t, '${roles.owner}');
      end loop;
    end $$;`);
}

async function finishRequest(db: pg.Client, keys: string[]): Promise<string> {
  const id = (await db.query('select pii.request_erasure($1::text[]) as id', [keys])).rows[0].id as string;
  while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
  await db.query('select pii.finish_request($1)', [id]);
  return id;
}

/** Residual traces of one subject of the beforeAll request. */
async function residualsOf(key: number): Promise<unknown[]> {
  const { rows } = await crm.query(
    `select v.table_name, v.column_name, v.detail from pii.verify_erasure($1) v
     where v.subject_hash = encode(pii_internal.subject_hash(null, $2), 'hex') order by 1, 2`,
    [requestId, String(key)],
  );
  return rows;
}

/** Runs sql and returns its error (or undefined): attacks may be refused, which is secure too. */
async function attempt(client: pg.Client, sql: string, params: unknown[] = []): Promise<{ code?: string } | undefined> {
  return client.query(sql, params).then(
    () => undefined,
    (e: { code?: string }) => e,
  );
}

async function pid(c: pg.Client): Promise<number> {
  return (await c.query('select pg_backend_pid() as p')).rows[0].p as number;
}

/**
 * Barrier for the race tests, no timing: resolves 'done' when the statement has
 * finished, or 'blocked' as soon as its session waits on a lock.
 */
async function doneOrBlocked(statement: Promise<unknown>, backend: number): Promise<'done' | 'blocked'> {
  let settled = false;
  statement.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (;;) {
    if (settled) return 'done';
    const { rows } = await crm.query(`select wait_event_type from pg_stat_activity where pid = $1`, [backend]);
    if (rows[0]?.wait_event_type === 'Lock') return 'blocked';
    await sleep(10);
  }
}

/** server_version_num of the test server (GRANT SET ON PARAMETER needs 15+). */
async function serverVersionNum(): Promise<number> {
  const client = new pg.Client(inject('adminUrl'));
  await client.connect();
  try {
    return Number((await client.query('show server_version_num')).rows[0].server_version_num);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  for (const r of Object.values(roles)) await admin(`create role ${r} login password '${password}'`);
  await admin(`grant pii_operator to ${roles.operator}; grant pii_auditor to ${roles.auditor}`);
  // GRANT SET ON PARAMETER exists from PostgreSQL 15; before, only a superuser (as logical
  // replication's apply worker is) may set session_replication_role.
  if ((await serverVersionNum()) >= 150000)
    await admin(`grant set on parameter session_replication_role to ${roles.owner}`);

  crm = await createTestDatabase('sec_comeback');
  await loadFixture(crm, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  await handOver(crm, 'app');
  owner = await connect(crm, roles.owner, 'secb-owner');
  operator = await connect(crm, roles.operator, 'secb-operator');
  auditor = await connect(crm, roles.auditor, 'secb-auditor');
  requestId = await finishRequest(operator, ERASED.map(String));
  expect((await crm.query('select status from pii.requests where id = $1', [requestId])).rows[0].status).toBe('done');
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const db of [crm, contacts, ci]) {
    if (!db) continue;
    for (const r of Object.values(roles)) await db.query(`drop owned by ${r}`).catch(() => undefined);
    await db.drop();
  }
  for (const r of Object.values(roles)) await admin(`drop role if exists ${r}`).catch(() => undefined);
});

describe('05 partitions attached with rows', () => {
  it('05a ATTACH PARTITION of a table holding an erased subject’s rows', async () => {
    await owner.query(`
      create table app.events_2026_11 (id bigint not null, customer_id bigint not null, occurred_at timestamptz not null, kind text not null, payload jsonb);
      insert into app.events_2026_11 values (905001, 11, '2026-11-05', 'page_view', '{"email": "user11@example.com"}')`);
    await attempt(
      owner,
      `alter table app.events attach partition app.events_2026_11 for values from ('2026-11-01') to ('2026-12-01')`,
    );
    expect((await crm.query(`select count(*)::int as n from app.events where customer_id = 11`)).rows[0].n).toBe(0);
    expect(await residualsOf(11)).toEqual([]);
    // The new partition is guarded from now on.
    await attempt(
      owner,
      `insert into app.events_2026_11 values (905002, 11, '2026-11-06', 'page_view', '{"email": "user11@example.com"}')`,
    );
    expect((await crm.query(`select count(*)::int as n from app.events where customer_id = 11`)).rows[0].n).toBe(0);
  });

  it('05b DETACH PARTITION, write the erased subject’s rows into it, ATTACH it back', async () => {
    await owner.query(`alter table app.events detach partition app.events_2026_09`);
    await owner.query(
      `insert into app.events_2026_09 (id, customer_id, occurred_at, kind, payload) overriding system value
       values (905101, 12, '2026-09-20', 'page_view', '{"email": "user12@example.com"}')`,
    );
    await attempt(
      owner,
      `alter table app.events attach partition app.events_2026_09 for values from ('2026-09-01') to ('2026-10-01')`,
    );
    expect((await crm.query(`select count(*)::int as n from app.events where customer_id = 12`)).rows[0].n).toBe(0);
    expect(await residualsOf(12)).toEqual([]);
  });

  it('05c a DEFAULT partition detached, filled with an erased subject’s rows and attached again', async () => {
    await owner.query(`alter table app.events detach partition app.events_default`);
    await owner.query(
      `insert into app.events_default (id, customer_id, occurred_at, kind, payload) overriding system value
       values (905201, 13, '2027-03-01', 'page_view', '{"email": "user13@example.com"}')`,
    );
    await attempt(owner, `alter table app.events attach partition app.events_default default`);
    expect((await crm.query(`select count(*)::int as n from app.events where customer_id = 13`)).rows[0].n).toBe(0);
    expect(await residualsOf(13)).toEqual([]);
  });
});

describe('06 inheritance children of registered tables', () => {
  const piiOrders = (customer: number) =>
    crm.query(
      `select id::int from app.orders where customer_id = $1 and (shipping_name is not null or shipping_address is not null)`,
      [customer],
    );

  it('06a CREATE TABLE … INHERITS (registered) and insert an erased subject’s PII into the child', async () => {
    const refused = await attempt(owner, `create table app.orders_archive () inherits (app.orders)`);
    if (!refused) {
      await attempt(
        owner,
        `insert into app.orders_archive (id, customer_id, total, shipping_name, shipping_address) values (906001, 14, 1, 'First14 Last14', '14 High Street')`,
      );
    }
    // The parent reads its children: that is where the PII would be.
    expect((await piiOrders(14)).rows).toEqual([]);
    expect(await residualsOf(14)).toEqual([]);
  });

  it('06b ALTER TABLE … INHERIT (registered) of a table holding an erased subject’s PII', async () => {
    await owner.query(`
      create table app.orders_old (like app.orders including defaults);
      insert into app.orders_old (id, customer_id, total, shipping_name, shipping_address) values (906101, 15, 1, 'First15 Last15', '15 High Street')`);
    await attempt(owner, `alter table app.orders_old inherit app.orders`);
    expect((await piiOrders(15)).rows).toEqual([]);
    expect(await residualsOf(15)).toEqual([]);
  });
});

describe('07 replication mode', () => {
  it('07 session_replication_role = replica (logical-replication apply, sync tools) skips the guards', async () => {
    // The sync: the table owner where it may set the replication role (15+), else a superuser.
    const sync: pg.ClientBase = (await serverVersionNum()) >= 150000 ? owner : await crm.pool.connect();
    await sync.query('begin');
    try {
      await sync.query('set local session_replication_role = replica');
      await sync.query(`update app.customers set email = 'user16@example.com', first_name = 'First16' where id = 16`);
      await sync.query(
        `insert into app.orders (id, customer_id, total, shipping_name, shipping_address) values (907001, 16, 1, 'First16 Last16', '16 High Street')`,
      );
      await sync.query(
        `insert into app.events (customer_id, occurred_at, kind, payload) values (16, '2026-10-07', 'page_view', '{"email": "user16@example.com"}')`,
      );
      await sync.query('commit');
    } catch (e) {
      await sync.query('rollback');
      throw e;
    } finally {
      if (sync !== owner) (sync as pg.PoolClient).release();
    }
    expect((await crm.query(`select email, first_name from app.customers where id = 16`)).rows).toEqual([
      { email: null, first_name: null },
    ]);
    expect(await residualsOf(16)).toEqual([]);
    // Lethe's guards (and only its guards) fire in every replication role.
    const { rows } = await crm.query(
      `select count(*)::int as n from pg_trigger where tgname like 'lethe\\_guard\\_%' and tgenabled <> 'A'`,
    );
    expect(rows[0].n).toBe(0);
  });
});

describe('08 guards disabled or dropped', () => {
  async function problems(client: pg.Client, fn: 'lint' | 'security_lint'): Promise<string> {
    return JSON.stringify((await client.query(`select * from pii.${fn}()`)).rows);
  }

  /** Where the event trigger refuses the change, the guard must still be on, ALWAYS; otherwise lint must say. */
  async function disabledOrReported(table: string, trigger: string, sql: string): Promise<void> {
    const refused = await attempt(owner, sql);
    if (refused) {
      expect(refused.code).toBe('42501');
      const { rows } = await crm.query(
        `select tgenabled from pg_trigger where tgrelid = $1::regclass and tgname = $2`,
        [table, trigger],
      );
      expect(rows).toEqual([{ tgenabled: 'A' }]);
      return;
    }
    const pattern = new RegExp(`${table.replace('.', '\\.')}[^}]*guard`);
    expect(await problems(operator, 'lint')).toMatch(pattern);
    expect(await problems(auditor, 'security_lint')).toMatch(pattern);
  }

  it('08a ALTER TABLE … DISABLE TRIGGER on a guard goes unnoticed by lint and security_lint', async () => {
    try {
      await disabledOrReported(
        'app.orders',
        'lethe_guard_insert',
        `alter table app.orders disable trigger lethe_guard_insert`,
      );
    } finally {
      await crm.query(`select pii.sync_guards('app.orders')`);
    }
  });

  it('08b a guard dropped from one partition (DROP TRIGGER) goes unnoticed', async () => {
    await owner.query(`drop trigger lethe_guard_update on app.events_2026_10`);
    try {
      expect(await problems(operator, 'lint')).toMatch(/app\.events_2026_10[^}]*guard/);
      expect(await problems(auditor, 'security_lint')).toMatch(/app\.events_2026_10[^}]*guard/);
    } finally {
      await crm.query(`select pii.sync_guards('app.events')`);
    }
  });

  it('08c a guard switched to ENABLE REPLICA TRIGGER (fires only under replica) goes unnoticed', async () => {
    try {
      await disabledOrReported(
        'app.order_items',
        'lethe_guard_update',
        `alter table app.order_items enable replica trigger lethe_guard_update`,
      );
    } finally {
      await crm.query(`select pii.sync_guards('app.order_items')`);
    }
  });
});

describe('09 race with erase_subjects', () => {
  it('09a a row written while erase_subjects is in flight (its tombstone not yet committed) survives both', async () => {
    const writer = await pid(owner);
    await operator.query('begin');
    await operator.query(`select * from pii.erase_subjects(array['30'])`);
    const write = owner.query(
      `insert into app.orders (id, customer_id, total, shipping_name, shipping_address) values (909001, 30, 1, 'First30 Last30', '30 High Street')`,
    );
    await doneOrBlocked(write, writer);
    await operator.query('commit');
    await write.catch(() => undefined);
    expect(
      (
        await crm.query(
          `select id::int, shipping_name from app.orders where customer_id = 30 and shipping_name is not null`,
        )
      ).rows,
    ).toEqual([]);
  });

  it('09b a row written (not yet committed) before erase_subjects runs, committed after it, survives both', async () => {
    const eraser = await pid(operator);
    await owner.query('begin');
    await owner.query(
      `insert into app.orders (id, customer_id, total, shipping_name, shipping_address) values (909101, 31, 1, 'First31 Last31', '31 High Street')`,
    );
    const erase = operator.query(`select * from pii.erase_subjects(array['31'])`);
    await doneOrBlocked(erase, eraser);
    await owner.query('commit');
    await erase;
    expect(
      (
        await crm.query(
          `select id::int, shipping_name from app.orders where customer_id = 31 and shipping_name is not null`,
        )
      ).rows,
    ).toEqual([]);
  });
});

describe('10 rows reaching an erased subject through their parent', () => {
  it('10a a child row written before its parent (deferred foreign key) keeps the erased subject’s PII', async () => {
    await owner.query(
      `alter table app.order_items alter constraint order_items_order_id_fkey deferrable initially deferred`,
    );
    await owner.query('begin');
    await owner.query(
      `insert into app.order_items (id, order_id, sku, quantity, gift_message) values (910001, 910000, 'SKU-1', 1, 'for First17 Last17')`,
    );
    await owner.query(`insert into app.orders (id, customer_id, total) values (910000, 17, 1)`);
    await owner.query('commit');
    expect((await crm.query(`select gift_message from app.order_items where id = 910001`)).rows).toEqual([
      { gift_message: null },
    ]);
    expect(await residualsOf(17)).toEqual([]);
  });

  it('10b a parent row re-keyed onto an erased subject brings its children’s PII along', async () => {
    // Order 401 and its items belong to customer 40; moved to erased subject 18.
    await owner.query(`update app.orders set customer_id = 18 where id = 401`);
    expect(
      (await crm.query(`select id::int, gift_message from app.order_items where order_id = 401 order by id`)).rows,
    ).toEqual([
      { id: 4011, gift_message: null },
      { id: 4012, gift_message: null },
    ]);
    expect(await residualsOf(18)).toEqual([]);
  });
});

describe('11 values that look erased', () => {
  let mailOperator: pg.Client;

  beforeAll(async () => {
    contacts = await createTestDatabase('sec_comeback_mail');
    await loadFixture(contacts, 'contacts_email_key.sql');
    await contacts.query(`
      alter table mail.contacts add column member_code text;
      select pii.register_subject_table('mail.contacts', 'email', key_is_pii => true);
      select pii.register_column('mail.contacts', 'full_name', 'null', 'partial:1,0', 'name');
      select pii.register_column('mail.contacts', 'city', 'null', 'hide', 'address');
      select pii.register_column('mail.contacts', 'member_code', 'pseudonym', 'hash', 'identifier');
      select pii.register_table('mail.tickets', 'contact_email', 'anonymize', unenforced_join => true);
      select pii.register_column('mail.tickets', 'body', 'null', 'hide', 'free_text');
      -- A contact known by its email alone (nothing else to erase) and one whose member code
      -- has the shape of a pseudonym.
      insert into mail.contacts (email, full_name, city, member_code) values
        ('anon_fan@news.example', null, null, null),
        ('dee@example.com', 'Dee Dale', 'Hull', 'anon_0123456789abcdef0123456789abcdef');
      insert into mail.tickets values (10, 'anon_fan@news.example', 'Hi', null);`);
    await handOver(contacts, 'mail');
    mailOperator = await connect(contacts, roles.operator, 'secb-mail-operator');
  });

  it('11a a key starting with anon_ (anon_fan@news.example) is taken as already pseudonymised', async () => {
    const id = await finishRequest(mailOperator, ['anon_fan@news.example']);
    const left = await contacts.query(
      `select (select count(*)::int from mail.contacts where email = 'anon_fan@news.example') as contacts,
              (select count(*)::int from mail.tickets where contact_email = 'anon_fan@news.example') as tickets`,
    );
    expect(left.rows[0]).toEqual({ contacts: 0, tickets: 0 });
    expect((await contacts.query('select status from pii.requests where id = $1', [id])).rows[0].status).toBe('done');
    expect((await contacts.query('select * from pii.verify_erasure($1)', [id])).rows).toEqual([]);
  });

  it('11b a pseudonym column holding a value shaped like a pseudonym (anon_ + 32 hex) keeps it', async () => {
    await mailOperator.query(`select * from pii.erase_subjects(array['dee@example.com'])`);
    const { rows } = await contacts.query(
      `select count(*)::int as n from mail.contacts where member_code = 'anon_0123456789abcdef0123456789abcdef'`,
    );
    expect(rows[0].n).toBe(0);
  });

  it('11c a uuid pseudonym column holding a version-8-shaped UUID keeps it', async () => {
    const v8 = '12345678-9abc-8def-8123-456789abcdef';
    await owner.query(`update app.customers set external_ref = $1 where id = 32`, [v8]);
    await operator.query(`select * from pii.erase_subjects(array['32'])`);
    const { rows } = await crm.query(`select external_ref::text as r from app.customers where id = 32`);
    expect(rows[0].r).not.toBe(v8);
  });
});

describe('12 citext keys', () => {
  let ciOperator: pg.Client;
  let ciOwner: pg.Client;

  beforeAll(async () => {
    ci = await createTestDatabase('sec_comeback_citext');
    await ci.query(`
      create extension citext;
      create schema cx;
      create table cx.accounts (email citext primary key, full_name text);
      create table cx.visits (id bigint primary key, email citext not null references cx.accounts (email) on update cascade, page text);
      create index on cx.visits (email);
      insert into cx.accounts values ('bob@x.example', 'Bob Baker'), ('carol@x.example', 'Carol Cooper');
      insert into cx.visits values (1, 'bob@x.example', '/a'), (2, 'carol@x.example', '/b');
      select pii.register_subject_table('cx.accounts', 'email', key_is_pii => true);
      select pii.register_column('cx.accounts', 'full_name', 'null', 'partial:1,0', 'name');
      select pii.register_table('cx.visits', 'email', 'delete');`);
    await handOver(ci, 'cx');
    ciOperator = await connect(ci, roles.operator, 'secb-ci-operator');
    ciOwner = await connect(ci, roles.owner, 'secb-ci-owner');
  });

  it('12a Bob@X.example erases 0 rows of bob@x.example (= on citext resolves to text =)', async () => {
    await ciOperator.query(`select * from pii.erase_subjects(array['Bob@X.example'])`);
    const { rows } = await ci.query(
      `select (select count(*)::int from cx.accounts where email = 'bob@x.example') as accounts,
              (select count(*)::int from cx.visits where email = 'bob@x.example') as visits`,
    );
    expect(rows[0]).toEqual({ accounts: 0, visits: 0 });
  });

  it('12b a case variant of an erased email (Carol@X.example) is accepted back', async () => {
    await ciOperator.query(`select * from pii.erase_subjects(array['carol@x.example'])`);
    await attempt(ciOwner, `insert into cx.accounts values ('Carol@X.example', 'Carol Again')`);
    const { rows } = await ci.query(`select count(*)::int as n from cx.accounts where email = 'carol@x.example'`);
    expect(rows[0].n).toBe(0);
    expect((await ciOperator.query(`select erased from pii.was_erased('CAROL@x.example')`)).rows[0].erased).toBe(true);
  });
});

describe('13 guards that trust Lethe’s own erasure statements', () => {
  // The guard returns at once for the statement pii.erase_subjects runs on a table (its rows
  // are erased), by a row only Lethe can write (pii_internal.own_erasure_statements). These
  // attacks try to ride on that: forging the row, or writing PII while Lethe's statement runs.
  /** Erases one customer while the owner's row trigger (timing: 'before' | 'after') runs body. */
  async function eraseWithOwnerTrigger(key: string, timing: 'before' | 'after', body: string): Promise<void> {
    await owner.query(`
      create function app.on_erase() returns trigger language plpgsql as $$ begin ${body} end $$;
      create trigger on_erase ${timing} update on app.customers for each row execute function app.on_erase()`);
    try {
      await operator.query(`select * from pii.erase_subjects(array[$1])`, [key]);
    } finally {
      await owner.query(`drop trigger on_erase on app.customers; drop function app.on_erase()`);
    }
  }

  const piiOrders = async (customer: number) =>
    (
      await crm.query(
        `select id::int from app.orders where customer_id = $1 and (shipping_name is not null or shipping_address is not null) order by id`,
        [customer],
      )
    ).rows;

  it('13a a sync session forges the marker of an erasure in flight to switch its guard off', async () => {
    const forged = await attempt(
      owner,
      `insert into pii_internal.own_erasure_statements values (pg_backend_pid(), 'app.orders'::regclass, 1)`,
    );
    expect(forged?.code).toBe('42501');
    await attempt(
      owner,
      `insert into app.orders (id, customer_id, total, shipping_name, shipping_address) values (913001, 11, 1, 'First11 Last11', '11 High Street')`,
    );
    expect(await piiOrders(11)).toEqual([]);
  });

  it('13b the owner’s trigger on the erased table writes the subject’s PII into another registered table and back into the same table', async () => {
    await eraseWithOwnerTrigger(
      '60',
      'after',
      `if old.email is not null and new.email is null then
         insert into app.orders (id, customer_id, total, shipping_name, shipping_address)
         values (913100 + new.id, new.id, 1, 'First' || new.id || ' Last' || new.id, new.id || ' High Street');
         update app.customers set first_name = 'First' || new.id where id = new.id;
       end if;
       return null;`,
    );
    // Both writes are statements of their own (one trigger depth deeper): guarded and scrubbed.
    expect((await crm.query(`select count(*)::int as n from app.orders where id = 913160`)).rows[0].n).toBe(1);
    expect(await piiOrders(60)).toEqual([]);
    expect((await crm.query(`select email, first_name from app.customers where id = 60`)).rows).toEqual([
      { email: null, first_name: null },
    ]);
    expect((await crm.query(`select count(*)::int as n from pii.verify_erasure_keys(array['60'])`)).rows[0].n).toBe(0);
  });

  it('13c the owner’s BEFORE UPDATE row trigger puts PII back into the very rows Lethe erases: verification reports it', async () => {
    await eraseWithOwnerTrigger('61', 'before', `new.first_name := old.first_name; return new;`);
    // Lethe's own statement is not checked again by its guard: the owner's code changed what
    // it wrote, and the erasure's verification names the column (never the value).
    const { rows } = await crm.query(`select table_name, column_name from pii.verify_erasure_keys(array['61'])`);
    expect(rows).toContainEqual({ table_name: 'app.customers', column_name: 'first_name' });
    expect(JSON.stringify(rows)).not.toContain('First61');
  });
});
