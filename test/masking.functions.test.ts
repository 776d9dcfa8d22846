// Masking functions (F14): pii.mask_email, mask_partial, mask_year, mask_hash on edge
// cases, and the masked views' inlined expressions giving exactly the same results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
const long = 'x'.repeat(100_000);

beforeAll(async () => {
  db = await createTestDatabase('masking_functions');
});
afterAll(() => db?.drop());

async function one<T = unknown>(sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await db.query(sql, params);
  return Object.values(rows[0])[0] as T;
}

describe('pii.mask_email', () => {
  it.each([
    ['jane.doe@example.com', 'j***@example.com'],
    ['J@x.io', 'J***@x.io'],
    ['@example.com', '***@example.com'],
    ['"a@b"@example.com', '"***@example.com'],
    ['no-at-sign', 'n***'],
    ['x', 'x***'],
    ['', ''],
    ['ñandú@correo.es', 'ñ***@correo.es'],
    ['😀smile@例え.jp', '😀***@例え.jp'],
    ['user@', 'u***@'],
  ])('%j -> %j', async (input, expected) => {
    expect(await one('select pii.mask_email($1)', [input])).toBe(expected);
  });

  it('NULL stays NULL', async () => {
    expect(await one('select pii.mask_email(null)')).toBeNull();
  });

  it('very long values keep only the first character and the domain', async () => {
    expect(await one('select pii.mask_email($1)', [`${long}@example.com`])).toBe('x***@example.com');
    expect(await one('select length(pii.mask_email($1))', [long])).toBe(4);
  });

  it('is immutable, strict and parallel safe, with an example in its comment', async () => {
    const { rows } = await db.query(
      `select provolatile, proisstrict, proparallel, obj_description(oid, 'pg_proc') as c from pg_proc where oid = 'pii.mask_email(text)'::regprocedure`,
    );
    expect(rows[0]).toMatchObject({ provolatile: 'i', proisstrict: true, proparallel: 's' });
    expect(rows[0].c).toMatch(/Example: select pii.mask_email/);
  });
});

describe('pii.mask_partial', () => {
  it.each([
    ['+44 7700 900123', 3, 2, '+44***23'],
    ['Jane', 1, 0, 'J***'],
    ['Jo', 1, 0, 'J***'],
    ['J', 1, 0, '***'],
    ['112', 3, 2, '***'], // a short phone number: nothing of it is shown
    ['0123456789', 3, 2, '012***89'],
    ['012345678', 3, 2, '***'], // fewer than 2 * (3 + 2) characters: at least half must stay hidden
    ['secret', 0, 0, '***'],
    ['abcdef', 0, 2, '***ef'],
    ['', 3, 2, ''],
    ['Zoë Ångström', 2, 2, 'Zo***öm'],
    ['😀😁😂😃', 1, 1, '😀***😃'],
  ])('%j (%i,%i) -> %j', async (input, first, last, expected) => {
    expect(await one('select pii.mask_partial($1, $2, $3)', [input, first, last])).toBe(expected);
  });

  it('NULL stays NULL', async () => {
    expect(await one('select pii.mask_partial(null, 3, 2)')).toBeNull();
  });

  it('very long values', async () => {
    expect(await one('select pii.mask_partial($1, 2, 2)', [long])).toBe('xx***xx');
  });

  it('refuses negative or NULL lengths', async () => {
    await expectPgError(db.query(`select pii.mask_partial('abc', -1, 0)`), '22023', /between 0 and 9999/);
    await expectPgError(db.query(`select pii.mask_partial('abc', null, 0)`), '22004', /must not be NULL/);
  });
});

describe('pii.mask_year', () => {
  it('keeps the type and truncates to January 1st', async () => {
    const { rows } = await db.query(`
      select pii.mask_year(date '1984-06-23') as d, pg_typeof(pii.mask_year(date '1984-06-23'))::text as dt,
             pii.mask_year(timestamp '1984-06-23 10:30:00')::text as ts, pg_typeof(pii.mask_year(timestamp '1984-06-23 10:30'))::text as tst,
             pii.mask_year(timestamptz '1984-06-23 10:30:00+02') as tz, pg_typeof(pii.mask_year(timestamptz '1984-06-23 10:30+02'))::text as tzt,
             pii.mask_year(null::date) as n, pii.mask_year('infinity'::date)::text as inf`);
    expect(rows[0]).toMatchObject({
      dt: 'date',
      ts: '1984-01-01 00:00:00',
      tst: 'timestamp without time zone',
      tzt: 'timestamp with time zone',
      n: null,
      inf: 'infinity',
    });
    expect((rows[0].d as Date).getFullYear()).toBe(1984);
    expect((rows[0].tz as Date).toISOString()).toBe('1984-01-01T00:00:00.000Z');
  });

  it('does not depend on the session time zone', async () => {
    const client = await db.pool.connect();
    try {
      await client.query(`set timezone = 'Pacific/Kiritimati'`);
      const a = (await client.query(`select pii.mask_year(timestamptz '2000-12-31 23:30:00+00')::text as v`)).rows[0].v;
      await client.query(`set timezone = 'America/Los_Angeles'`);
      const b = (
        await client.query(
          `select pii.mask_year(timestamptz '2000-12-31 23:30:00+00') = timestamptz '2000-01-01 00:00:00+00' as same`,
        )
      ).rows[0];
      expect(a).toBe('2000-01-01 14:00:00+14');
      expect(b.same).toBe(true);
    } finally {
      await client.query('reset timezone');
      client.release();
    }
  });
});

describe('pii.mask_hash', () => {
  it('is stable, keyed, 32 hex characters, and NULL for NULL', async () => {
    const { rows } = await db.query(
      `select pii.mask_hash('jane@example.com') as a, pii.mask_hash('jane@example.com') as b, pii.mask_hash('jane@example.org') as c,
              pii.mask_hash('') as e, pii.mask_hash(null) as n, encode(sha256(convert_to('jane@example.com', 'UTF8')), 'hex') as plain`,
    );
    expect(rows[0].a).toMatch(/^[0-9a-f]{32}$/);
    expect(rows[0].a).toBe(rows[0].b);
    expect(rows[0].a).not.toBe(rows[0].c);
    expect(rows[0].e).toMatch(/^[0-9a-f]{32}$/);
    expect(rows[0].n).toBeNull();
    expect(rows[0].plain.startsWith(rows[0].a)).toBe(false); // not an unkeyed hash anyone can compute
  });

  it('is domain-separated from subject hashes and pseudonyms', async () => {
    const { rows } = await db.query(
      `select pii.mask_hash('42') as m, encode(pii_internal.subject_hash('mask', '42'), 'hex') as s1, encode(pii_internal.subject_hash(null, '42'), 'hex') as s2,
              replace((pii_internal.pseudonyms(array['42']))[1], 'anon_', '') as p`,
    );
    for (const other of [rows[0].s1, rows[0].s2, rows[0].p]) expect(other.startsWith(rows[0].m)).toBe(false);
  });

  it('unicode and very long values hash without error', async () => {
    expect(await one('select pii.mask_hash($1)', ['Zoë 😀'])).toMatch(/^[0-9a-f]{32}$/);
    expect(await one('select pii.mask_hash($1)', [long])).toMatch(/^[0-9a-f]{32}$/);
  });

  it('is granted to pii_admin only (a reader who could call it could test guesses)', async () => {
    const { rows } = await db.query(
      `select r as role, has_function_privilege(r, 'pii.mask_hash(text)', 'execute') as ok
       from unnest(array['pii_admin', 'pii_operator', 'pii_auditor', 'pii_dispatcher', 'pii_masked_reader']) r`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.role, r.ok]))).toEqual({
      pii_admin: true,
      pii_operator: false,
      pii_auditor: false,
      pii_dispatcher: false,
      pii_masked_reader: false,
    });
  });
});

describe('masked views compute exactly what the functions compute', () => {
  const values = [
    'jane.doe@example.com',
    '@example.com',
    '"a@b"@example.com',
    'no-at-sign',
    'x',
    '',
    'ñandú@correo.es',
    '😀smile@例え.jp',
    '+44 7700 900123',
    '112',
    '0123456789',
    'Zoë Ångström',
    `${long}@example.com`,
    null,
  ];

  beforeAll(async () => {
    await db.query(`
      create schema edge;
      create table edge.people (id bigint primary key, v text, phone varchar(20), short_code char(8), born date, seen timestamp, at timestamptz, ref uuid, h text);
      select pii.register_subject_table('edge.people', 'id');
      select pii.register_column('edge.people', 'v', 'null', 'email');
      select pii.register_column('edge.people', 'phone', 'null', 'partial:3,2');
      select pii.register_column('edge.people', 'short_code', 'null', 'partial:0,2');
      select pii.register_column('edge.people', 'born', 'null', 'year');
      select pii.register_column('edge.people', 'seen', 'null', 'year');
      select pii.register_column('edge.people', 'at', 'null', 'year');
      select pii.register_column('edge.people', 'ref', 'null', 'hash');
      select pii.register_column('edge.people', 'h', 'null', 'hash');`);
    await db.query(
      `insert into edge.people (id, v, phone, short_code, born, seen, at, ref, h)
       select i, v, left(v, 20), left(v, 8), date '1990-05-06' + i::int, timestamp '1990-05-06 07:08' + i * interval '100 days',
              timestamptz '1990-12-31 23:30+00' + i * interval '1 year', gen_random_uuid(), v
       from unnest($1::text[]) with ordinality u (v, i)`,
      [values],
    );
  });

  it('email, partial, year and hash agree row by row', async () => {
    const { rows } = await db.query(`
      select m.id,
             m.v is not distinct from pii.mask_email(p.v) as email,
             m.phone is not distinct from pii.mask_partial(p.phone, 3, 2)::varchar(20) as partial,
             m.short_code is not distinct from pii.mask_partial(p.short_code::text, 0, 2)::char(8) as partial_char,
             m.born is not distinct from pii.mask_year(p.born) as year_date,
             m.seen is not distinct from pii.mask_year(p.seen) as year_ts,
             m.at is not distinct from pii.mask_year(p.at) as year_tz,
             m.ref is not distinct from pii.mask_hash(p.ref::text)::uuid as hash_uuid,
             m.h is not distinct from pii.mask_hash(p.h) as hash_text
      from masked.people m join edge.people p using (id) order by id`);
    expect(rows).toHaveLength(values.length);
    for (const r of rows) {
      expect(r).toEqual({
        id: r.id,
        email: true,
        partial: true,
        partial_char: true,
        year_date: true,
        year_ts: true,
        year_tz: true,
        hash_uuid: true,
        hash_text: true,
      });
    }
  });

  it('keep the column types (varchar(20), char(8), date, timestamp, timestamptz, uuid)', async () => {
    const { rows } = await db.query(`
      select a.attname, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
      where a.attrelid = 'masked.people'::regclass and a.attnum > 0 order by a.attnum`);
    expect(rows).toEqual([
      { attname: 'id', type: 'bigint' },
      { attname: 'v', type: 'text' },
      { attname: 'phone', type: 'character varying(20)' },
      { attname: 'short_code', type: 'character(8)' },
      { attname: 'born', type: 'date' },
      { attname: 'seen', type: 'timestamp without time zone' },
      { attname: 'at', type: 'timestamp with time zone' },
      { attname: 'ref', type: 'uuid' },
      { attname: 'h', type: 'text' },
    ]);
  });
});
