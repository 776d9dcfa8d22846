// PII discovery (F23): pii.discover finds unregistered columns that look like personal
// data by name (several languages), type, sampled values and jsonb keys; suggests a
// register_column call; samples with TABLESAMPLE (never a full scan of a big table); and
// never returns a sampled value.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
type Finding = { table_name: string; column_name: string | null; reason: string; suggestion: string | null };
let findings: Finding[];

function find(table: string, column: string, reason?: RegExp): Finding | undefined {
  return findings.find((f) => f.table_name === table && f.column_name === column && (!reason || reason.test(f.reason)));
}

beforeAll(async () => {
  db = await createTestDatabase('discover');
  await loadFixture(db, 'crm.sql', 'crm_register.sql', 'masking_discovery.sql');
  // A column classified as not PII that holds emails, and an unclassified jsonb key.
  await db.query(`
    alter table app.orders add column contact text;
    update app.orders set contact = 'buyer' || id || '@example.com';
    select pii.mark_not_pii('app.orders', 'contact');
    update app.events set payload = payload || jsonb_build_object('phone', '+44 20 7946 0' || customer_id);
    -- Second address lines, password hashes, pictures (bytea), names inside jsonb arrays.
    create table shop.accounts (
      id bigint primary key,
      address2 text, address_line_2 text, "streetLine2" text, address_line_1 text,
      password_hash text, passwd text, pwd text,
      secret text,           -- bcrypt hashes, the name says nothing
      kdf text,              -- argon2id hashes
      photo bytea, avatar bytea, signature bytea,
      blob bytea,            -- PNG pictures, the name says nothing
      payload bytea,         -- neither name nor bytes say anything
      image_url text,        -- a URL, not a picture
      profile jsonb
    );
    insert into shop.accounts
    select i, 'Apt ' || i, 'Floor ' || i, 'c/o ' || i, i || ' Main St',
           '$2b$12$' || rpad(md5('a' || i), 53, 'x'), 'x', 'x',
           '$2a$10$' || rpad(md5('b' || i), 53, 'y'),
           '$argon2id$v=19$m=65536,t=3,p=4$' || md5('s' || i) || '$' || md5('h' || i),
           decode('ffd8ffe000104a464946', 'hex'), decode('89504e470d0a1a0a', 'hex'), decode('25504446', 'hex'),
           decode('89504e470d0a1a0a0000000d49484452', 'hex') || convert_to('pixels' || i, 'UTF8'),
           convert_to('plain ' || i, 'UTF8'),
           'https://cdn.example.com/' || i || '.png',
           jsonb_build_object('contacts', jsonb_build_array(jsonb_build_object('name', 'Guest' || i, 'mail', 'guest' || i || '@example.org')),
                              'tags', jsonb_build_array('a', 'b'), 'owner', jsonb_build_object('first_name', 'Owner' || i))
    from generate_series(1, 200) i;`);
  findings = (await db.query(`select * from pii.discover()`)).rows;
});
afterAll(() => db?.drop());

describe('by name', () => {
  it.each([
    ['shop.kunden', 'vorname', /first name/],
    ['shop.kunden', 'nachname', /last name/],
    ['shop.kunden', 'geburtsdatum', /date of birth/],
    ['shop.kunden', 'strasse', /postal address/],
    ['shop.kunden', 'plz', /postcode/],
    ['shop.kunden', 'telefon', /phone number/],
    ['shop.kunden', 'firstName', /first name/],
    ['shop.clientes', 'nombre', /first name/],
    ['shop.clientes', 'apellido', /last name/],
    ['shop.clientes', 'direccion', /postal address/],
    ['shop.clientes', 'telefono', /phone number/],
    ['shop.clientes', 'prenom', /first name/],
    ['shop.clientes', 'adresse', /postal address/],
  ])('%s.%s: %s', (table, column, rule) => {
    const f = find(table, column);
    expect(f, `${table}.${column} not found`).toBeDefined();
    expect(f!.reason).toMatch(new RegExp(`^name suggests .*${rule.source}`));
  });

  it('ignores names that only contain a PII word (product_name, email_opt_out, created_at)', () => {
    for (const c of ['product_name', 'email_opt_out', 'created_at', 'id'])
      expect(find('shop.kunden', c)).toBeUndefined();
  });

  it('suggests a register_column call that fits the type, after register_table when the table is not registered', () => {
    expect(find('shop.kunden', 'geburtsdatum')!.suggestion).toBe(
      `select pii.register_table('shop.kunden', '<subject column>', 'anonymize');  select pii.register_column('shop.kunden', 'geburtsdatum', 'null', 'year', 'demographic');`,
    );
    expect(find('shop.kunden', 'firstName')!.suggestion).toContain(
      `select pii.register_column('shop.kunden', 'firstName', 'null', 'partial:1,0', 'name');`,
    );
  });
});

describe('by type and by sampled values', () => {
  it('inet columns hold IP addresses', () => {
    expect(find('shop.contacts', 'seen_from')?.reason).toBe('type inet holds IP addresses');
  });

  it.each([
    ['c1', /^200 of 200 sampled values contain email addresses$/],
    ['c2', /^200 of 200 sampled values look like phone numbers$/],
    ['c3', /^200 of 200 sampled values look like IBANs$/],
    ['c4', /^200 of 200 sampled values look like IPv4 addresses$/],
    ['c5', /^200 of 200 sampled values look like IPv6 addresses$/],
    ['c6', /^200 of 200 sampled values look like payment card numbers$/],
    ['remarks', /^20 of 200 sampled values contain email addresses$/],
  ])('shop.contacts.%s', (column, reason) => {
    expect(find('shop.contacts', column)?.reason).toMatch(reason);
  });

  it('a column without PII is not reported', () => {
    expect(find('shop.contacts', 'colour')).toBeUndefined();
    expect(find('shop.contacts', 'id')).toBeUndefined();
  });

  it('a column classified as not PII whose values look like PII is reported', () => {
    expect(find('app.orders', 'contact')?.reason).toMatch(
      /sampled values contain email addresses \(the column is classified as not PII\)$/,
    );
  });

  it('registered columns are not reported again', () => {
    for (const c of ['email', 'first_name', 'last_name', 'phone', 'birth_date'])
      expect(find('app.customers', c)).toBeUndefined();
  });
});

describe('jsonb keys', () => {
  it('finds keys whose values look like PII, nested too', () => {
    expect(find('shop.contacts', 'attrs', /customerEmail/)?.reason).toBe(
      'jsonb key customerEmail: 200 of 200 sampled values contain email addresses',
    );
    expect(find('shop.contacts', 'attrs', /contact\.mobile_phone/)?.reason).toBe(
      'jsonb key contact.mobile_phone: 200 of 200 sampled values look like phone numbers',
    );
    expect(find('shop.contacts', 'attrs', /utm_source|qty/)).toBeUndefined();
  });

  it('suggests jsonb_remove for top-level keys; nested keys need the whole column', () => {
    expect(find('shop.contacts', 'attrs', /customerEmail/)?.suggestion).toContain(
      `'jsonb_remove:customerEmail', 'hide', 'contact'`,
    );
    expect(find('shop.contacts', 'attrs', /mobile_phone/)?.suggestion).toMatch(
      /'null', 'hide', 'contact'\); {2}-- nested key contact.mobile_phone/,
    );
  });

  it('a registered jsonb column: keys its jsonb_remove rule leaves behind are reported, removed keys are not', () => {
    const phone = find('app.events', 'payload', /jsonb key phone/);
    expect(phone?.reason).toMatch(/^jsonb key phone: \d+ of \d+ sampled values look like phone numbers$/);
    expect(phone?.suggestion).toBe(
      `select pii.register_column('app.events', 'payload', 'jsonb_remove:email,phone', 'hide', 'behaviour');`,
    );
    expect(find('app.events', 'payload', /jsonb key email/)).toBeUndefined();
  });
});

describe('sampling', () => {
  it('never returns a sampled value', () => {
    const text = JSON.stringify(findings);
    for (const re of [
      /@mail\.example\.org/,
      /person\d/,
      /DE89/,
      /192\.168\./,
      /2001:db8/,
      /4111/,
      /visitor\d/,
      /buyer\d/,
      /Hauptstr/,
      /\+44 20/,
    ]) {
      expect(text).not.toMatch(re);
    }
  });

  it('reads a big table with TABLESAMPLE, not whole', async () => {
    expect(find('shop.big_log', 'line')?.reason).toMatch(/^\d+ of \d+ sampled values contain email addresses$/);
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select * from pii.discover(sample_rows => 100)`);
      const { rows } = await client.query(
        `select seq_scan, seq_tup_read from pg_stat_xact_user_tables where relid = 'shop.big_log'::regclass`,
      );
      expect(Number(rows[0].seq_tup_read)).toBeLessThan(20_000); // of 200,000 rows
      const plan = await client.query(`explain ${await sampleSql(client)}`);
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), await sampleSql(client)).toMatch(
        /Sample Scan on big_log/,
      );
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('reads a small table with LIMIT', async () => {
    const { rows } = await db.query(`select pii_internal.discovery_sample_sql('shop.kunden', 1000, 't.vorname') as s`);
    expect(rows[0].s).toBe('select t.vorname from shop.kunden t limit 1000');
  });

  it('validates sample_rows', async () => {
    await expectPgError(db.query(`select * from pii.discover(0)`), '22023', /between 1 and 100000/);
    await expectPgError(db.query(`select * from pii.discover(null)`), '22004', /must not be NULL/);
  });

  it('is for pii_admin and pii_auditor', async () => {
    const { rows } = await db.query(`
      select r, has_function_privilege(r, 'pii.discover(integer)', 'execute') as ok
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

async function sampleSql(client: { query: (s: string) => Promise<{ rows: any[] }> }): Promise<string> {
  return (await client.query(`select pii_internal.discovery_sample_sql('shop.big_log', 100, 't.line') as s`)).rows[0].s;
}

describe('second address lines, password hashes, pictures, names inside jsonb', () => {
  it.each([
    ['address2', /^name suggests a second address line$/],
    ['address_line_2', /^name suggests a second address line$/],
    ['streetLine2', /^name suggests a second address line$/],
    ['address_line_1', /^name suggests a postal address$/],
    ['password_hash', /^name suggests a password hash$/],
    ['passwd', /^name suggests a password hash$/],
    ['pwd', /^name suggests a password hash$/],
    ['secret', /^200 of 200 sampled values look like password hashes/],
    ['kdf', /^200 of 200 sampled values look like password hashes/],
    ['photo', /^name suggests a picture, signature or document of a person$/],
    ['avatar', /^name suggests a picture/],
    ['signature', /^name suggests a picture/],
    ['blob', /^200 of 200 sampled values look like pictures or documents/],
  ])('shop.accounts.%s', (column, reason) => {
    expect(find('shop.accounts', column)?.reason).toMatch(reason);
  });

  it('bytea without picture bytes and text URLs of pictures are not reported', () => {
    expect(find('shop.accounts', 'payload')).toBeUndefined();
    expect(find('shop.accounts', 'image_url')).toBeUndefined();
  });

  it('a picture column flagged by name is not reported again by its bytes', () => {
    expect(findings.filter((f) => f.table_name === 'shop.accounts' && f.column_name === 'photo')).toHaveLength(1);
  });

  it('suggests a register_column call for bytea', () => {
    expect(find('shop.accounts', 'blob')!.suggestion).toContain(
      `select pii.register_column('shop.accounts', 'blob', 'null', 'hide', 'image');`,
    );
  });

  it('finds names and emails inside objects of jsonb arrays, and names in nested objects', () => {
    expect(find('shop.accounts', 'profile', /contacts\[\]\.name/)?.reason).toBe(
      "jsonb key contacts[].name: name suggests a person's name",
    );
    expect(find('shop.accounts', 'profile', /contacts\[\]\.mail/)?.reason).toBe(
      'jsonb key contacts[].mail: 200 of 200 sampled values contain email addresses',
    );
    expect(find('shop.accounts', 'profile', /owner\.first_name/)?.reason).toBe(
      'jsonb key owner.first_name: name suggests a first name',
    );
    expect(find('shop.accounts', 'profile', /contacts\[\]\.name/)?.suggestion).toMatch(
      /'null', 'hide', 'name'\); {2}-- nested key contacts\[\]\.name/,
    );
    expect(find('shop.accounts', 'profile', /tags/)).toBeUndefined();
  });
});

describe('pii.mark_not_pii on a table Lethe does not register', () => {
  const discover = async () => (await db.query<Finding>(`select * from pii.discover()`)).rows;

  it("dismisses discovery's false positive: the column is not reported again", async () => {
    await db.query(`create table shop.category (id int primary key, name text not null, note text);
                    insert into shop.category select i, 'Genre ' || i, 'write to staff' || i || '@example.com' from generate_series(1, 20) i;`);
    const has = (rows: Finding[], col: string) =>
      rows.some((f) => f.table_name === 'shop.category' && f.column_name === col);
    expect(has(await discover(), 'name')).toBe(true);
    expect((await db.query(`select pii.mark_not_pii('shop.category', 'name', 'note') as n`)).rows).toEqual([{ n: 2 }]);
    const after = await discover();
    expect(has(after, 'name')).toBe(false);
    // Values that look like PII are still reported, saying the column was classified.
    expect(after.find((f) => f.table_name === 'shop.category' && f.column_name === 'note')?.reason).toMatch(
      /contain email addresses \(the column is classified as not PII\)$/,
    );
    expect(
      (
        await db.query(
          `select relid::text, attnum from pii.not_pii_columns where relid = 'shop.category'::regclass order by 2`,
        )
      ).rows,
    ).toEqual([
      { relid: 'shop.category', attnum: 2 },
      { relid: 'shop.category', attnum: 3 },
    ]);
    // Idempotent; the audit keeps the table and a count.
    await db.query(`select pii.mark_not_pii('shop.category', 'name')`);
    expect(
      (await db.query(`select count(*)::int as n from pii.not_pii_columns where relid = 'shop.category'::regclass`))
        .rows[0].n,
    ).toBe(2);
    expect(
      (await db.query(`select details from pii.audit where action = 'mark_not_pii' order by id desc limit 1`)).rows[0]
        .details,
    ).toEqual({
      table: 'shop.category',
      columns: 1,
    });
  });

  it("refuses a missing column (42703), a view (42809) and Lethe's own tables (22023), writing nothing", async () => {
    const before = (await db.query(`select count(*)::int as n from pii.not_pii_columns`)).rows[0].n;
    await expectPgError(
      db.query(`select pii.mark_not_pii('shop.category', 'id', 'nope')`),
      '42703',
      /column "nope" does not exist in table shop.category/,
    );
    await db.query(`create view shop.category_names as select name from shop.category`);
    await expectPgError(db.query(`select pii.mark_not_pii('shop.category_names', 'name')`), '42809', /is not a table/);
    await expectPgError(db.query(`select pii.mark_not_pii('pii.audit', 'action')`), '22023', /Lethe's own tables/);
    await expectPgError(
      db.query(`select pii.mark_not_pii('shop.category', variadic '{}'::name[])`),
      '22004',
      /no column given/,
    );
    expect((await db.query(`select count(*)::int as n from pii.not_pii_columns`)).rows[0].n).toBe(before);
  });

  it('becomes a keep/clear/not_pii rule when the table is registered', async () => {
    await db.query(`create table shop.wishlists (id bigint primary key, customer_id bigint not null references app.customers (id), title text, note text);
                    create index on shop.wishlists (customer_id);
                    select pii.mark_not_pii('shop.wishlists', 'title', 'customer_id');
                    select pii.register_table('shop.wishlists', 'customer_id', 'anonymize');`);
    expect(
      (
        await db.query(
          `select column_name, erase, mask, category from pii.registered_columns where table_name = 'shop.wishlists'`,
        )
      ).rows,
    ).toEqual([{ column_name: 'title', erase: 'keep', mask: 'clear', category: 'not_pii' }]);
    expect(
      (await db.query(`select count(*)::int as n from pii.not_pii_columns where relid = 'shop.wishlists'::regclass`))
        .rows[0].n,
    ).toBe(0);
  });

  it('is forgotten when its column or table is dropped', async () => {
    await db.query(`alter table shop.category drop column note`);
    expect(
      (await db.query(`select attnum from pii.not_pii_columns where relid = 'shop.category'::regclass`)).rows,
    ).toEqual([{ attnum: 2 }]);
    await db.query(`drop table shop.category cascade`);
    expect((await db.query(`select count(*)::int as n from pii.not_pii_columns`)).rows[0].n).toBe(0);
  });
});
