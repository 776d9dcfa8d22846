// Privilege escalation through Lethe (issue 11, attacks 1-4 and 16). Real LOGIN roles over
// real connections try to gain what they were never given: a table owner with no Lethe
// role attaches code to their registered table (triggers, rules, domain and table CHECKs,
// index and generated-column expressions) and waits for Lethe's erasures and guards to run
// it; a pii_admin registers a table it may only read and deletes through erasure; a
// CREATEROLE or pg_read_all_data login becomes a masked reader; an unrelated DROP TABLE
// takes a masked view away. Each attack is one test and must fail.
//
// The proof of an escalation is the owner's function own.pwn(): it records who ran it,
// then tries `alter role <owner> superuser` and to copy Lethe's install key (pii_internal.secret)
// into the owner's own table. Run with the owner's rights it can do neither; run with
// Lethe's (the installer, a superuser in these tests) it does both.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { vaultKekOptions } from '../src/piiApi/vaultKek.js';
import { migrate } from '../src/db/migrate.js';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const password = randomBytes(12).toString('hex');
const databases: TestDatabase[] = [];
const clients: pg.Client[] = [];
const roles: string[] = [];
let serial = 0;

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const d of databases) await d.drop();
  const admin = new pg.Client(inject('adminUrl'));
  await admin.connect();
  try {
    for (const r of roles) await admin.query(`drop role if exists ${pg.escapeIdentifier(r)}`);
  } finally {
    await admin.end();
  }
});

/** A fresh database with the CRM fixture registered (app.customers is the subject table). */
async function crm(): Promise<TestDatabase> {
  const db = await createTestDatabase('sec_escalation');
  databases.push(db);
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  return db;
}

/** A LOGIN role (no Lethe role unless granted) and a TCP connection as it. */
async function login(db: TestDatabase, tag: string, attributes = ''): Promise<{ name: string; client: pg.Client }> {
  const name = `sec_${db.name.slice(-8)}_${tag}_${++serial}`;
  roles.push(name);
  await db.query(`create role ${name} login password '${password}' ${attributes}`);
  const client = new pg.Client({ connectionString: connectAs(db.url, name, password), application_name: tag });
  client.on('error', () => undefined);
  await client.connect();
  clients.push(client);
  return { name, client };
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> {
  return p.then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );
}

interface Owned {
  db: TestDatabase;
  owner: string;
  /** The table owner's own session. */
  as: pg.Client;
  operator: pg.Client;
}

/**
 * A table owner with no Lethe role in database db (the CRM fixture, registered unless
 * told otherwise): schema own, the owner's proof function own.pwn() (and a trigger
 * function calling it), own.ok() for domain checks (harmless until replaced), and an
 * operator login to erase.
 */
async function attacker(opts: { registered?: boolean } = {}): Promise<Owned> {
  const db = await createTestDatabase('sec_escalation');
  databases.push(db);
  await loadFixture(db, 'crm.sql', ...(opts.registered === false ? [] : ['crm_register.sql']));
  const owner = await login(db, 'owner');
  const operator = await login(db, 'operator');
  await db.query(`grant pii_operator to ${operator.name}`);
  await db.query(`create schema own authorization ${owner.name}`);
  await owner.client.query(`
    create function own.ok(v text) returns boolean language plpgsql as 'begin return true; end';
    create table own.ran (who text);
    create table own.loot (who text, secret text);
    grant insert on own.ran, own.loot to public;
    create function own.pwn() returns boolean language plpgsql as $f$
    begin
      insert into own.ran values (current_user);
      begin
        execute pg_catalog.format('alter role %I superuser', '${owner.name}');
      exception when others then null;
      end;
      begin
        insert into own.loot select current_user, pg_catalog.encode(s.inner_key, 'hex') from pii_internal.secret s;
      exception when others then null;
      end;
      return true;
    end
    $f$;
    create function own.pwn_trigger() returns trigger language plpgsql as $f$
    begin
      perform own.pwn();
      return case when tg_level = 'ROW' and tg_op <> 'DELETE' then new when tg_level = 'ROW' then old end;
    end
    $f$;`);
  return { db, owner: owner.name, as: owner.client, operator: operator.client };
}

/** The owner's code from now on calls own.pwn() wherever own.ok() is used (domain checks). */
async function armDomainCheck(a: Owned): Promise<void> {
  await a.as.query(`create or replace function own.ok(v text) returns boolean language plpgsql as
    'begin perform own.pwn(); return true; end'`);
}

/**
 * The attacker's own.notes (customer_id, note) for customers 1-3, registered by the DBA
 * (on_erase as given, note erased to NULL unless a rule is given).
 */
async function ownedTable(
  opts: { onErase?: 'anonymize' | 'delete'; noteType?: string; noteRule?: string } = {},
): Promise<Owned> {
  const a = await attacker();
  await a.as.query(`
    create domain own.note_t as text check (own.ok(value));
    create table own.notes (id bigint primary key, customer_id bigint not null, note ${opts.noteType ?? 'text'});
    create index on own.notes (customer_id);
    insert into own.notes select i, i, 'note of customer ' || i from generate_series(1, 3) i;`);
  await a.db.query(`select pii.register_table('own.notes', 'customer_id', $1, unenforced_join => true)`, [
    opts.onErase ?? 'anonymize',
  ]);
  await a.db.query(`select pii.register_column('own.notes', 'note', $1)`, [opts.noteRule ?? 'null']);
  return a;
}

/** The owner's code ran (so the attack was tried), only ever as the owner, and gained nothing. */
async function expectRanAsOwnerOnly(a: Owned): Promise<void> {
  const { rows } = await a.db.query(
    `select (select r.rolsuper from pg_roles r where r.rolname = $1) as superuser,
            (select coalesce(array_agg(distinct who order by who), '{}') from own.ran) as ran_as,
            (select count(*)::int from own.loot) as secrets`,
    [a.owner],
  );
  expect(rows[0]).toEqual({ superuser: false, ran_as: [a.owner], secrets: 0 });
}

/** How many of customer n's rows of own.notes still carry a note. */
async function notesLeft(a: Owned, customer: number): Promise<number> {
  const { rows } = await a.db.query(
    `select count(*)::int as n from own.notes where customer_id = $1 and note is not null`,
    [customer],
  );
  return rows[0].n;
}

describe('1. a table owner with no Lethe role gains nothing from code Lethe runs on their table', () => {
  it('a BEFORE UPDATE row trigger fired by an operator erase_subjects (anonymize table)', async () => {
    const a = await ownedTable();
    await a.as.query(`create trigger pwn before update on own.notes for each row execute function own.pwn_trigger()`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('an AFTER DELETE statement trigger fired by erase_subjects (delete table)', async () => {
    const a = await ownedTable({ onErase: 'delete' });
    await a.as.query(
      `create trigger pwn after delete on own.notes for each statement execute function own.pwn_trigger()`,
    );
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect((await a.db.query(`select count(*)::int as n from own.notes where customer_id = 1`)).rows[0].n).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a row trigger fired by the guard scrub when the owner re-inserts an erased subject (the owner becomes superuser)', async () => {
    const a = await ownedTable();
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    await a.as.query(`create trigger pwn before update on own.notes for each row execute function own.pwn_trigger()`);
    // The owner is their own sync process: the guard scrubs the row it just wrote.
    await a.as.query(`insert into own.notes values (100, 1, 'back again')`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a row trigger fired by the minimising of rows a legal hold keeps (delete table), by erasure and by the guard', async () => {
    const a = await ownedTable({ onErase: 'delete' });
    await a.db.query(
      `select pii.place_hold(array['1'], 'notes: litigation', current_date + 30, array['own.notes'::regclass])`,
    );
    await a.as.query(`create trigger pwn before update on own.notes for each row execute function own.pwn_trigger()`);
    await a.operator.query(`select * from pii.erase_subjects(array['1', '2'])`);
    const rows = async (customer: number) =>
      (await a.db.query(`select id::int, note from own.notes where customer_id = $1 order by id`, [customer])).rows;
    expect(await rows(1)).toEqual([{ id: 1, note: null }]);
    expect(await rows(2)).toEqual([]);
    // The owner re-inserts the held subject's row: the guard minimises it (kept, no PII).
    await a.as.query(`insert into own.notes values (100, 1, 'back again')`);
    expect(await rows(1)).toEqual([
      { id: 1, note: null },
      { id: 100, note: null },
    ]);
    await expectRanAsOwnerOnly(a);
  });

  it('a statement trigger fired by the worker chunk (request_erasure + process_request_chunk)', async () => {
    const a = await ownedTable();
    await a.as.query(
      `create trigger pwn before update on own.notes for each statement execute function own.pwn_trigger()`,
    );
    const id = (await a.operator.query(`select pii.request_erasure(array['2']) as id`)).rows[0].id;
    while ((await a.operator.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
    expect(await notesLeft(a, 2)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a DO ALSO rule on UPDATE calling the owner function', async () => {
    const a = await ownedTable();
    await a.as.query(`create rule pwn as on update to own.notes do also select own.pwn()`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('an index expression (an IMMUTABLE plpgsql function) evaluated by the erasure UPDATE', async () => {
    const a = await ownedTable();
    await a.as.query(`
      create function own.idx(v text) returns integer language plpgsql immutable as
        'begin perform own.pwn(); return pg_catalog.length(v); end';
      create index notes_idx on own.notes (own.idx(note))`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a stored generated column recomputed by the erasure UPDATE', async () => {
    const a = await ownedTable();
    await a.as.query(`
      create function own.gen(v text) returns integer language plpgsql immutable as
        'begin perform own.pwn(); return pg_catalog.length(v); end';
      alter table own.notes add column note_len integer generated always as (own.gen(note)) stored`);
    await a.db.query(`truncate own.ran`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a table CHECK constraint and a column DEFAULT calling the owner function', async () => {
    const a = await ownedTable();
    // The default is only evaluated by INSERTs (the owner's own); the CHECK by Lethe's UPDATE.
    await a.as.query(`
      alter table own.notes add column stamp boolean default own.pwn(),
        add constraint notes_ok check (own.pwn())`);
    await a.db.query(`truncate own.ran`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a domain CHECK on an erased column, evaluated by every erasure', async () => {
    const a = await ownedTable({ noteType: 'own.note_t' });
    await armDomainCheck(a);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });
  it('a trigger and a row level security policy on a table of another owner, Lethe installed without SUPERUSER: refused until Lethe may act for the owner, then run as that owner (erasure, request, verification, discovery, restore_check, guard)', async () => {
    // A managed-service install: the database owner (no SUPERUSER) runs migrate; the
    // application's tables belong to another login.
    const tag = randomBytes(4).toString('hex');
    const installer = `sec_${tag}_installer`;
    const appOwner = `sec_${tag}_app`;
    const dbName = `lethe_test_sec_nosuper_${tag}`;
    roles.push(installer, appOwner);
    await admin(`create role ${installer} login password '${password}' nosuperuser;
                 create role ${appOwner} login password '${password}' nosuperuser`);
    await admin(
      `grant pii_admin, pii_operator, pii_auditor, pii_masked_reader, pii_dispatcher to ${installer} with admin option`,
    );
    await admin(`create database ${dbName} owner ${installer}`);
    await admin(`grant create on database ${dbName} to ${appOwner}`);
    const url = withDatabaseName(inject('adminUrl'), dbName);
    const lethe = new pg.Client(connectAs(url, installer, password));
    const app = new pg.Client(connectAs(url, appOwner, password));
    try {
      await migrate(connectAs(url, installer, password));
      await lethe.connect();
      await app.connect();
      await app.query(`create schema app`);
      await app.query(`
        create table app.people (id bigint primary key, email text);
        insert into app.people values (1, 'ann@example.com'), (2, 'bob@example.com');
        grant usage on schema app to ${installer};
        grant select, update, delete, trigger on app.people to ${installer};
        create table app.loot (who text, secret text);
        grant insert on app.loot to public;
        create function app.pwn() returns trigger language plpgsql as $f$
        begin
          begin
            insert into app.loot select current_user, pg_catalog.encode(s.inner_key, 'hex') from pii_internal.secret s;
          exception when others then
            insert into app.loot values (current_user, null);
          end;
          return new;
        end
        $f$;`);
      await expectPgError(
        lethe.query(`select pii.register_subject_table('app.people', 'id')`),
        '42501',
        new RegExp(`not a member of role ${appOwner}`),
      );
      await admin(`grant ${appOwner} to ${installer}`);
      await lethe.query(`select pii.register_subject_table('app.people', 'id');
                         select pii.register_column('app.people', 'email', 'null')`);
      await app.query(`create trigger pwn before update on app.people for each row execute function app.pwn()`);
      await lethe.query(`select * from pii.erase_subjects(array['1'])`);
      const { rows } = await app.query(`select who, secret is not null as got_key from app.loot`);
      expect(rows).toEqual([{ who: appOwner, got_key: false }]);
      expect((await app.query(`select email from app.people order by id`)).rows).toEqual([
        { email: null },
        { email: 'bob@example.com' },
      ]);

      // A row level security policy calling the owner's code runs with the rights of whoever
      // reads the table: Lethe's owner (no SUPERUSER, no BYPASSRLS, not the table's owner)
      // must never read it itself. FORCE: the owner's deputy runs it too, as the owner.
      await app.query(`
        truncate app.loot;
        create function app.pol() returns boolean language plpgsql as $f$
        begin
          begin
            insert into app.loot select current_user, pg_catalog.encode(s.inner_key, 'hex') from pii_internal.secret s;
          exception when others then
            insert into app.loot values (current_user, null);
          end;
          return true;
        end
        $f$;
        alter table app.people enable row level security, force row level security;
        create policy pwn on app.people using (app.pol()) with check (app.pol());`);
      await lethe.query(`select * from pii.erase_subjects(array['2'])`);
      const id = (await lethe.query(`select pii.request_erasure(array['1']) as id`)).rows[0].id;
      while ((await lethe.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
      await lethe.query(`select pii.finish_request($1)`, [id]);
      await lethe.query(`select * from pii.verify_erasure($1)`, [id]);
      await lethe.query(`select * from pii.discover()`);
      const entries = (
        await lethe.query(`select pg_catalog.jsonb_agg(entry order by seq) as e from pii.ledger_entries_after(0)`)
      ).rows[0].e;
      const check = await lethe.query(`select subjects::int from pii.restore_check($1)`, [JSON.stringify(entries)]);
      expect(check.rows).toEqual([{ subjects: 2 }]);
      await app.query(
        `insert into app.people values (2, 'bob@example.com') on conflict (id) do update set email = excluded.email`,
      );
      expect((await app.query(`select email from app.people where id = 2`)).rows).toEqual([{ email: null }]);
      const { rows: ran } = await app.query(`select distinct who, secret is not null as got_key from app.loot`);
      expect(ran).toEqual([{ who: appOwner, got_key: false }]);
    } finally {
      await lethe.end().catch(() => undefined);
      await app.end().catch(() => undefined);
      await admin(`drop database if exists ${dbName} with (force)`);
      await admin(`drop owned by ${installer}, ${appOwner}`).catch(() => undefined);
    }
  });
});

describe('2. a domain CHECK never runs with Lethe rights', () => {
  it('at register_column: the set: literal of the erase and of the mask strategy cast to the domain', async () => {
    const a = await ownedTable({ noteType: 'own.note_t' });
    await armDomainCheck(a);
    await a.db.query(`select pii.register_column('own.notes', 'note', 'set:gone', 'set:hidden')`);
    await expectRanAsOwnerOnly(a);
  });

  it('at a guarded write: the guard scrub casting set: to the domain', async () => {
    const a = await ownedTable({ noteType: 'own.note_t', noteRule: 'set:gone' });
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    await armDomainCheck(a);
    await a.as.query(`insert into own.notes values (100, 1, 'back again')`);
    expect((await a.db.query(`select note::text from own.notes where id = 100`)).rows[0].note).toBe('gone');
    await expectRanAsOwnerOnly(a);
  });
  it('at verification: the erased-state comparison of a set: column of the owner domain (request, worker chunk, finish_request, verify_erasure)', async () => {
    const a = await ownedTable({ noteType: 'own.note_t', noteRule: 'set:gone' });
    await armDomainCheck(a);
    const id = (await a.operator.query(`select pii.request_erasure(array['1']) as id`)).rows[0].id;
    while ((await a.operator.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
    expect((await a.operator.query(`select pii.finish_request($1) as s`, [id])).rows[0].s).toBe('done');
    expect((await a.operator.query(`select * from pii.verify_erasure($1)`, [id])).rows).toEqual([]);
    expect((await a.db.query(`select note::text from own.notes where customer_id = 1`)).rows).toEqual([
      { note: 'gone' },
    ]);
    await expectRanAsOwnerOnly(a);
  });

  it('at every erasure and request: the subject key cast to a domain of the subject table owner', async () => {
    const a = await attacker({ registered: false });
    await a.as.query(`
      create domain own.person_id as bigint check (own.ok(value::text));
      create table own.people (id own.person_id primary key, email text);
      insert into own.people select i, 'person' || i || '@example.com' from generate_series(1, 3) i;`);
    await a.db.query(`select pii.register_subject_table('own.people', 'id');
                      select pii.register_column('own.people', 'email', 'null')`);
    await armDomainCheck(a);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    await a.operator.query(`select pii.request_erasure(array['2'])`);
    expect((await a.db.query(`select count(*)::int as n from own.people where email is null`)).rows[0].n).toBe(1);
    await expectRanAsOwnerOnly(a);
  });
});

describe('1b. reading a registered table never runs the owner code as Lethe', () => {
  /**
   * The owner's subject table own.people, scoped by the owner's enum own.tenant whose cast
   * to text (CREATE CAST … WITH FUNCTION) calls own.pwn(): every place Lethe turns a scope
   * into text (hashing subjects, verification, the residual search) runs that function.
   * own.people.bio is an unregistered text column, searched for the subject's identifiers.
   */
  async function castingOwner(): Promise<Owned> {
    const a = await attacker({ registered: false });
    await a.as.query(`
      create type own.tenant as enum ('eu', 'us');
      create function own.tenant_text(t own.tenant) returns text language plpgsql as
        'begin perform own.pwn(); return t::name::text; end';
      create cast (own.tenant as text) with function own.tenant_text(own.tenant);
      create table own.people (tenant own.tenant not null, id bigint not null, email text, bio text,
                               primary key (tenant, id));
      insert into own.people select 'eu', i, 'person' || i || '@example.com', 'write to person' || i || '@example.com'
      from generate_series(1, 3) i;`);
    await a.db.query(`select pii.register_subject_table('own.people', 'id', 'tenant');
                      select pii.register_column('own.people', 'email', 'null', mask => 'email')`);
    return a;
  }

  it("owner's cast to text runs during the worker chunk, finish_request and verify_erasure as the owner only", async () => {
    const a = await castingOwner();
    const id = (await a.operator.query(`select pii.request_erasure(array['2'], scopes => array['eu']) as id`)).rows[0]
      .id;
    while ((await a.operator.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
    // The bio still names the subject: the residual search found it (as the owner).
    expect((await a.operator.query(`select pii.finish_request($1) as s`, [id])).rows[0].s).toBe('failed');
    expect((await a.operator.query(`select table_name, column_name from pii.verify_erasure($1)`, [id])).rows).toEqual([
      { table_name: 'own.people', column_name: 'bio' },
    ]);
    await a.db.query(`update own.people set bio = null where id = 2`);
    expect((await a.operator.query(`select * from pii.verify_erasure($1)`, [id])).rows).toEqual([]);
    await expectRanAsOwnerOnly(a);
  });

  it("owner's cast to text runs during pii.tokenize (the key and scope cast to their column types) as the owner only", async () => {
    const a = await castingOwner();
    await a.db.query(`select pii.set_token_kind('email')`);
    await a.db.query(`truncate own.ran`);
    const { rows } = await a.db.query(`select pii.tokenize('2', 'email', 'new@example.com', scope => 'eu') as t`);
    expect(rows[0].t).toMatch(/^tok_/);
    await expectRanAsOwnerOnly(a);
  });

  it("owner's cast reads the vault's external KEK from the PII API session's settings during pii.tokenize", async () => {
    const a = await castingOwner();
    const kek = randomBytes(32).toString('hex');
    const session = async (keks: { current?: string; next?: string }, sql: string): Promise<any[]> => {
      const c = new pg.Client({ connectionString: a.db.url, options: vaultKekOptions(keks, undefined) });
      await c.connect();
      try {
        return (await c.query(sql)).rows;
      } finally {
        await c.end();
      }
    };
    await a.db.query(`select pii.set_token_kind('email')`);
    await session({ next: kek }, `select * from pii.vault_rotate_kek('external')`);
    await a.as.query(`create or replace function own.tenant_text(t own.tenant) returns text language plpgsql as $f$
      begin
        insert into own.loot values (current_user, pg_catalog.current_setting('lethe.vault_kek', true));
        insert into own.loot values (current_user, pg_catalog.current_setting('lethe.vault_new_kek', true));
        return t::name::text;
      end
      $f$`);
    const rows = await session(
      { current: kek, next: randomBytes(32).toString('hex') },
      `select pii.tokenize('2', 'email', 'new@example.com', scope => 'eu') as t`,
    );
    expect(rows[0].t).toMatch(/^tok_/);
    const { rows: loot } = await a.db.query(`select who, coalesce(secret, '') as secret from own.loot`);
    expect(loot.length).toBeGreaterThan(0); // the owner's code ran in that session
    expect(loot.filter((l) => l.secret !== '')).toEqual([]);
  });

  it("owner's cast to text runs during pii.restore_check (every key of the subject table hashed) as the owner only", async () => {
    const a = await castingOwner();
    await a.operator.query(`select * from pii.erase_subjects(array['2'], scopes => array['eu'])`);
    const entries = (
      await a.db.query(`select pg_catalog.jsonb_agg(entry order by seq) as e from pii.ledger_entries_after(0)`)
    ).rows[0].e;
    // Subject 2 is back (a restore from before the erasure): restore_check finds it again.
    await a.db.query(`update own.people set email = 'person2@example.com' where id = 2`);
    await a.db.query(`truncate own.ran`);
    const { rows } = await a.db.query(
      `select subjects::int, replayed::int, already_erased::int from pii.restore_check($1)`,
      [JSON.stringify(entries)],
    );
    expect(rows).toEqual([{ subjects: 1, replayed: 0, already_erased: 1 }]);
    await expectRanAsOwnerOnly(a);
  });
});

describe("1d. a partition owned by another role never runs its code with the parent owner's rights", () => {
  it("a partition given to another login, whose trigger would run with the parent owner's rights: erasure refused (42501) until the owners match; registration refused too", async () => {
    const a = await attacker();
    const other = await login(a.db, 'part');
    await a.as.query(`
      grant usage on schema own to public;
      create table own.events (id bigint not null, customer_id bigint not null, note text) partition by range (id);
      create table own.events_1 partition of own.events for values from (0) to (100);
      create index on own.events (customer_id);
      insert into own.events select i, i, 'event of customer ' || i from generate_series(1, 3) i;`);
    await a.db.query(`select pii.register_table('own.events', 'customer_id', 'anonymize', unenforced_join => true);
                      select pii.register_column('own.events', 'note', 'null')`);
    await a.db.query(`alter table own.events_1 owner to ${other.name}`);
    await other.client.query(
      `create trigger pwn before update on own.events_1 for each row execute function own.pwn_trigger()`,
    );
    await expectPgError(
      a.operator.query(`select * from pii.erase_subjects(array['1'])`),
      '42501',
      new RegExp(`own.events_1 \\(in the tree of own.events\\) is owned by ${other.name}, not by ${a.owner}`),
    );
    expect((await a.db.query(`select count(*)::int as n from own.ran`)).rows[0].n).toBe(0);
    expect((await a.db.query(`select note from own.events where customer_id = 1`)).rows).toEqual([
      { note: 'event of customer 1' },
    ]);
    // Registering such a tree is refused as well.
    await a.as.query(`
      create table own.visits (id bigint not null, customer_id bigint not null) partition by range (id);
      create table own.visits_1 partition of own.visits for values from (0) to (100);
      create index on own.visits (customer_id);`);
    await a.db.query(`alter table own.visits_1 owner to ${other.name}`);
    await expectPgError(
      a.db.query(`select pii.register_table('own.visits', 'customer_id', 'delete')`),
      '42501',
      /own.visits_1 \(in the tree of own.visits\) is owned by/,
    );
    // One owner again: the erasure runs, the trigger as that owner.
    await a.db.query(`alter table own.events_1 owner to ${a.owner}`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect((await a.db.query(`select note from own.events where customer_id = 1`)).rows).toEqual([{ note: null }]);
    await expectRanAsOwnerOnly(a);
  });
});

describe('1f. tables of one subject tree owned by different roles are reported', () => {
  it("security_lint warns about a registered table whose owner is not the subject table's, naming both", async () => {
    const a = await ownedTable();
    const mixed = async () =>
      (await a.db.query(`select severity, problem, hint from pii.security_lint() where object = 'own.notes'`)).rows;
    expect(await mixed()).toEqual([
      {
        severity: 'warning',
        problem: expect.stringMatching(
          new RegExp(
            `^owned by ${a.owner}, but subject table app\\.customers \\(kind \\w+\\) is owned by \\w+: code of one owner runs during every erasure`,
          ),
        ),
        hint: expect.stringMatching(/^alter table own\.notes owner to \w+;/),
      },
    ]);
    await a.db.query(`alter table own.notes owner to current_user`);
    expect(await mixed()).toEqual([]);
  });
});

describe("1e. code a deputy runs cannot change the settings of Lethe's later statements, nor run later", () => {
  /**
   * The owner's trigger own.set_it() calls set_config(name, value, local) while Lethe's
   * statement updates own.notes. A function's SET clause does not undo a plain SET made
   * inside it (PostgreSQL keeps it past the function's exit), and SET LOCAL of a setting
   * the function does not pin lasts to the end of the transaction.
   */
  async function settingTrigger(a: Owned, name: string, value: string, local: boolean): Promise<void> {
    await a.as.query(`
      create function own.set_it() returns trigger language plpgsql as $f$
      begin
        perform pg_catalog.set_config(${pg.escapeLiteral(name)}, ${pg.escapeLiteral(value)}, ${local});
        return new;
      end
      $f$;
      create trigger set_it before update on own.notes for each row execute function own.set_it()`);
  }

  it("a trigger's set_config('search_path', 'own, pg_catalog', false) during erase_subjects: the operator's next query would run the owner's = operator as the operator", async () => {
    const a = await ownedTable();
    await a.as.query(`
      create function own.eq(x text, y text) returns boolean language plpgsql as $f$
      begin
        insert into own.ran values (current_user);
        return x operator(pg_catalog.=) y;
      end
      $f$;
      create operator own.= (leftarg = text, rightarg = text, function = own.eq);
      grant usage on schema own to public`);
    await settingTrigger(a, 'search_path', 'own, pg_catalog', false);
    const before = (await a.operator.query(`show search_path`)).rows[0].search_path;
    await expectPgError(
      a.operator.query(`select * from pii.erase_subjects(array['1'])`),
      '42501',
      /changed the setting search_path/,
    );
    expect((await a.operator.query(`show search_path`)).rows[0].search_path).toBe(before);
    await a.operator.query(`select 1 where 'x'::text = 'x'::text`);
    expect((await a.db.query(`select who from own.ran`)).rows).toEqual([]);
    expect(await notesLeft(a, 1)).toBe(1); // refused whole
  });

  it("a trigger's set_config('search_path', …) during the worker chunk (process_request_chunk)", async () => {
    const a = await ownedTable();
    await settingTrigger(a, 'search_path', 'own, pg_catalog', false);
    const id = (await a.operator.query(`select pii.request_erasure(array['2']) as id`)).rows[0].id;
    await expectPgError(
      a.operator.query(`select pii.process_request_chunk($1) as n`, [id]),
      '42501',
      /changed the setting search_path/,
    );
    expect(await notesLeft(a, 2)).toBe(1);
  });

  it.each([
    // Text forms of keys and values (hashes, tombstones, pseudonyms) change with the date style.
    ['DateStyle', 'SQL, DMY', true],
    // Bound parameters (the operator's subject keys) in the server log when a statement fails.
    ['log_parameter_max_length_on_error', '-1', false],
    // Index scans that return a subset: erasure and verification miss rows.
    ['gin_fuzzy_search_limit', '1', true],
    ['lock_timeout', '1', true],
    ['row_security', 'off', false],
    // Lethe's own flag: skips the masking event triggers for the rest of the session.
    ['lethe.masking_rebuild', 'on', false],
  ])(
    'a trigger setting %s = %s (local: %s) during erase_subjects is refused and undone',
    async (name, value, local) => {
      const a = await ownedTable();
      await settingTrigger(a, name, value, local);
      // A custom setting, once set, stays defined (as '') after a rollback: Lethe reads '' as off.
      const show = async (): Promise<string> =>
        (await a.operator.query(`select coalesce(current_setting($1, true), '') as v`, [name])).rows[0].v;
      const before = await show();
      await a.operator.query('begin');
      await expectPgError(
        a.operator.query(`select * from pii.erase_subjects(array['1'])`),
        '42501',
        new RegExp(`changed the setting ${name}`),
      );
      await a.operator.query('rollback');
      expect(await show()).toBe(before);
      expect(await notesLeft(a, 1)).toBe(1);
    },
  );

  it("a deferred constraint trigger queued by erase_subjects fires at the operator's commit as the operator", async () => {
    const a = await ownedTable();
    // USAGE for all: so that the trigger, fired as someone else, gets as far as own.pwn().
    await a.as.query(`grant usage on schema own to public;
                      create constraint trigger pwn after update on own.notes deferrable initially deferred
                      for each row execute function own.pwn_trigger()`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    expect(await notesLeft(a, 1)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });

  it('a deferred constraint trigger of another table the owner writes from an immediate trigger, during the worker chunk', async () => {
    const a = await ownedTable();
    await a.as.query(`
      grant usage on schema own to public;
      create table own.side (id bigint);
      create constraint trigger pwn after insert on own.side deferrable initially deferred
        for each row execute function own.pwn_trigger();
      create function own.touch() returns trigger language plpgsql as $f$
      begin
        insert into own.side values (1);
        return new;
      end
      $f$;
      create trigger touch before update on own.notes for each row execute function own.touch()`);
    const id = (await a.operator.query(`select pii.request_erasure(array['2']) as id`)).rows[0].id;
    while ((await a.operator.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
    expect(await notesLeft(a, 2)).toBe(0);
    await expectRanAsOwnerOnly(a);
  });
});

describe("1c. no key of Lethe shows in a plan, and statements run with an owner's rights never hold the install key", () => {
  /** The bytes of a key as debug_print_plan prints a bytea constant (signed decimals). */
  const planBytes = (hex: string): string =>
    [...Buffer.from(hex, 'hex').subarray(0, 16)].map((b) => (b > 127 ? b - 256 : b)).join(' ');

  it("debug_print_plan turned on by the operator, by the owner's trigger (refused) or by a writer whose row the guard scrubs shows no key in Lethe's plans", async () => {
    const a = await ownedTable({ noteRule: 'pseudonym' });
    await a.as.query(`
      create function own.show_plans() returns trigger language plpgsql as $f$
      begin
        perform pg_catalog.set_config('debug_print_plan', 'on', false);
        perform pg_catalog.set_config('client_min_messages', 'log', false);
        return new;
      end
      $f$;
      create trigger show_plans before update on own.notes for each row execute function own.show_plans()`);
    const notices: string[] = [];
    const collect = (n: { message?: string; detail?: string }): number =>
      notices.push(`${n.message ?? ''} ${n.detail ?? ''}`);
    a.operator.on('notice', collect);
    a.as.on('notice', collect);
    // The owner's trigger may not change the operator's settings (1e): refused, and undone.
    await expectPgError(
      a.operator.query(`select * from pii.erase_subjects(array['1'])`),
      '42501',
      /changed the setting (client_min_messages|debug_print_plan)/,
    );
    await a.as.query(`drop trigger show_plans on own.notes`);
    await a.operator.query(`set debug_print_plan = on; set client_min_messages = log`);
    await a.operator.query(`select * from pii.erase_subjects(array['1'])`);
    await a.operator.query(`select * from pii.erase_subjects(array['2'])`);
    // The writer's own session: its insert of an erased subject fires the guard's scrub.
    await a.as.query(`set debug_print_plan = on; set client_min_messages = log;
                      insert into own.notes values (10, 2, 'note of customer 2 again');
                      reset debug_print_plan; reset client_min_messages`);
    await a.operator.query(`reset debug_print_plan; reset client_min_messages`);
    const { rows } = await a.db.query(
      `select encode(s.inner_key, 'hex') as install_inner, encode(s.outer_key, 'hex') as install_outer,
              encode(p.inner_key, 'hex') as pseudonym_inner, encode(p.outer_key, 'hex') as pseudonym_outer
       from pii_internal.secret s, pii_internal.pseudonym_key p`,
    );
    // Node dumps wrap lines anywhere: compare whitespace-normalised.
    const plans = notices.join(' ').replace(/\s+/g, ' ');
    expect(plans).toContain('PLANNEDSTMT'); // the plans were printed
    for (const [name, key] of Object.entries(rows[0]) as [string, string][])
      expect(plans, name).not.toContain(planBytes(key));
    expect((await a.db.query(`select note from own.notes where id = 10`)).rows[0].note).toMatch(/^anon_[0-9a-f]{32}$/);
    expect(await notesLeft(a, 2)).toBe(2); // pseudonymised, not NULL
  });

  it('pii_internal.pseudonym_key is HMAC(install key, lethe pseudonym key) in RFC 2104 padded form, and pseudonyms are made with it', async () => {
    const a = await ownedTable({ noteRule: 'pseudonym' });
    await a.operator.query(`select * from pii.erase_subjects(array['3'])`);
    const { rows } = await a.db.query(`
      with k as (select pii_internal.hmac('lethe pseudonym key') || decode(repeat('00', 32), 'hex') as k),
           pads as (select (select string_agg(lpad(to_hex(get_byte(k.k, i) # 54), 2, '0'), '' order by i) from generate_series(0, 63) i) as i,
                           (select string_agg(lpad(to_hex(get_byte(k.k, i) # 92), 2, '0'), '' order by i) from generate_series(0, 63) i) as o
                    from k)
      select pads.i = encode(p.inner_key, 'hex') and pads.o = encode(p.outer_key, 'hex') as derived,
             (select note from own.notes where customer_id = 3) = (pii_internal.pseudonyms(array['note of customer 3']))[1] as pseudonym
      from pads, pii_internal.pseudonym_key p`);
    expect(rows[0]).toEqual({ derived: true, pseudonym: true });
  });
});

describe('3. a pii_admin cannot change a table through Lethe beyond its own privileges', () => {
  async function adminWithSelectOnly(): Promise<{ db: TestDatabase; admin: pg.Client }> {
    const db = await crm();
    const admin = await login(db, 'piiadmin');
    await db.query(`grant pii_admin to ${admin.name}`);
    await db.query(`
      create table app.wishlist (id bigint primary key, customer_id bigint not null, item text);
      create index on app.wishlist (customer_id);
      insert into app.wishlist select i, i % 3 + 1, 'item ' || i from generate_series(1, 9) i;
      grant usage on schema app to ${admin.name};
      grant select on app.wishlist to ${admin.name}`);
    return { db, admin: admin.client };
  }

  it('registers a table it may only SELECT on_erase => delete and deletes its rows via erase_subjects', async () => {
    const { db, admin } = await adminWithSelectOnly();
    const refused = await failure(
      admin.query(`select pii.register_table('app.wishlist', 'customer_id', 'delete', unenforced_join => true)`),
    );
    await failure(admin.query(`select * from pii.erase_subjects(array['1', '2', '3'])`));
    expect((await db.query(`select count(*)::int as n from app.wishlist`)).rows[0].n).toBe(9);
    expect(refused?.code).toBe('42501');
    expect(refused?.message).toMatch(/DELETE/);
  });

  it('registers a table it may only SELECT as anonymize and rewrites its rows via erase_subjects', async () => {
    const { db, admin } = await adminWithSelectOnly();
    const refused = await failure(
      admin.query(`select pii.register_table('app.wishlist', 'customer_id', 'anonymize', unenforced_join => true);
                   select pii.register_column('app.wishlist', 'item', 'null')`),
    );
    await failure(admin.query(`select * from pii.erase_subjects(array['1', '2', '3'])`));
    expect((await db.query(`select count(*)::int as n from app.wishlist where item is not null`)).rows[0].n).toBe(9);
    expect(refused?.code).toBe('42501');
    expect(refused?.message).toMatch(/UPDATE|TRIGGER/);
  });

  it('registers a child table it cannot even SELECT', async () => {
    const { db, admin } = await adminWithSelectOnly();
    await db.query(`
      create table app.wish_notes (id bigint primary key, wish_id bigint not null references app.wishlist, body text);
      insert into app.wish_notes select i, i, 'body ' || i from generate_series(1, 9) i`);
    await db.query(`select pii.register_table('app.wishlist', 'customer_id', 'anonymize', unenforced_join => true)`);
    const refused = await failure(
      admin.query(`select pii.register_child_table('app.wish_notes', 'app.wishlist', 'wish_id', 'delete')`),
    );
    expect(refused?.code).toBe('42501');
    expect(
      (await db.query(`select count(*)::int as n from pii.tables where relid = 'app.wish_notes'::regclass`)).rows[0].n,
    ).toBe(0);
  });
});

describe('4. a masked reader cannot read around the masks', () => {
  async function grantReader(db: TestDatabase, role: string): Promise<{ code?: string; message?: string } | undefined> {
    return failure(db.query(`select pii.grant_role('pii_masked_reader', $1)`, [role]));
  }
  async function isReader(db: TestDatabase, role: string): Promise<boolean> {
    return (await db.query(`select pg_has_role($1, 'pii_masked_reader', 'member') as m`, [role])).rows[0].m;
  }

  it('a CREATEROLE login is refused as a masked reader (it could give itself pg_read_all_data)', async () => {
    const db = await crm();
    const r = await login(db, 'creator', 'createrole');
    const refused = await grantReader(db, r.name);
    expect(refused?.code).toBe('22023');
    expect(refused?.message).toMatch(/CREATEROLE/);
    expect(await isReader(db, r.name)).toBe(false);
  });

  it.each([
    'pg_read_all_data',
    'pg_write_all_data',
    'pg_read_server_files',
    'pg_write_server_files',
    'pg_execute_server_program',
  ])('a member of %s (through an intermediate group) is refused as a masked reader', async (predefined) => {
    const db = await crm();
    const r = await login(db, 'member');
    const group = `${r.name}_grp`;
    roles.push(group);
    await db.query(`create role ${group} nologin; grant ${predefined} to ${group}; grant ${group} to ${r.name}`);
    const refused = await grantReader(db, r.name);
    expect(refused?.code).toBe('22023');
    expect(refused?.message).toContain(predefined);
    expect(await isReader(db, r.name)).toBe(false);
  });

  it('a login that can SELECT a registered base table (one column) is refused as a masked reader', async () => {
    const db = await crm();
    const r = await login(db, 'direct');
    await db.query(`grant usage on schema app to ${r.name}; grant select (email) on app.customers to ${r.name}`);
    const refused = await grantReader(db, r.name);
    expect(refused?.code).toBe('22023');
    expect(refused?.message).toContain('app.customers');
    expect(await isReader(db, r.name)).toBe(false);
  });

  it('security_lint reports readers that became CREATEROLE or members of pg_read_all_data after the grant', async () => {
    const db = await crm();
    const creator = await login(db, 'laterc');
    const member = await login(db, 'laterm');
    await db.query(`select pii.grant_masked_reader($1)`, [creator.name]);
    await db.query(`select pii.grant_masked_reader($1)`, [member.name]);
    await db.query(`alter role ${creator.name} createrole; grant pg_read_all_data to ${member.name}`);
    const { rows } = await db.query(`select object, problem from pii.security_lint() where severity = 'error'`);
    const text = JSON.stringify(rows);
    expect(
      rows.some((r) => r.object.includes(creator.name) && /CREATEROLE/.test(r.problem)),
      text,
    ).toBe(true);
    expect(
      rows.some((r) => r.object.includes(member.name) && /pg_read_all_data/.test(r.problem)),
      text,
    ).toBe(true);
    // Roles are the cluster's: a reader that may not connect to this database reads nothing
    // of it (it is another database's reader), so this database's lint does not report it.
    await db.query(`revoke connect on database ${db.name} from public;
                    grant connect on database ${db.name} to ${member.name}`);
    const after = JSON.stringify(
      (await db.query(`select object from pii.security_lint() where severity = 'error'`)).rows,
    );
    expect(after).not.toContain(creator.name);
    expect(after).toContain(member.name);
  });
});

describe('16. DDL on other tables never takes a masked view away', () => {
  async function viewOid(db: TestDatabase): Promise<number | null> {
    return (await db.query(`select to_regclass('masked.customers')::oid::int as o`)).rows[0].o;
  }

  it('dropping an unrelated table whose name contains a registered table name (app.customers_archive)', async () => {
    const db = await crm();
    await db.query(`create table app.customers_archive (id int)`);
    const before = await viewOid(db);
    await db.query(`drop table app.customers_archive`);
    expect(before).not.toBeNull();
    expect(await viewOid(db)).toBe(before);
  });

  it('dropping a table of the same name in another schema (other.customers)', async () => {
    const db = await crm();
    await db.query(`create schema other; create table other.customers (id int)`);
    const before = await viewOid(db);
    await db.query(`drop table other.customers`);
    expect(await viewOid(db)).toBe(before);
  });
});
