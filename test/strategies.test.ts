// pii_internal.erase_strategies() / pii_internal.mask_strategies(): the strategy catalogs
// (db/code/47_strategies.sql). Every entry is documented, and its example works end to end:
// registered on a column, erased by a request, verify_erasure clean, a re-inserted row
// scrubbed by the guard; masks shown in the masked view. Adding a strategy is one entry:
// the worked example of docs/architecture.md, added to the catalog, works the same way.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

interface Entry {
  name: string;
  syntax: string;
  example: string;
  example_type: string;
  example_value: string;
  example_result: string | null;
  doc: string;
}

// One database per describe: a database has one subject table.
let db: TestDatabase;
let added: TestDatabase;

beforeAll(async () => {
  [db, added] = await Promise.all([createTestDatabase('strategies'), createTestDatabase('strategy_added')]);
});
afterAll(() => Promise.all([db?.drop(), added?.drop()]));

const catalog = async (db: TestDatabase, fn: 'erase_strategies' | 'mask_strategies'): Promise<Entry[]> =>
  (
    await db.query<Entry>(
      `select name, syntax, example, example_type, example_value, example_result, doc from pii_internal.${fn}()`,
    )
  ).rows;

/** Each value of the row as text, in column order e_0, e_1, … */
async function rowValues(db: TestDatabase, table: string, id: string, columns: string[]): Promise<(string | null)[]> {
  const { rows } = await db.query(
    `select ${columns.map((c) => `${c}::text as ${c}`).join(', ')} from ${table} where id = $1`,
    [id],
  );
  return columns.map((c) => rows[0][c] as string | null);
}

/** Whether a value matches an entry's example_result (a LIKE pattern; NULL: the value is NULL). */
async function matches(db: TestDatabase, value: string | null, pattern: string | null): Promise<boolean> {
  if (pattern === null) return value === null;
  return (await db.query(`select $1::text like $2 as ok`, [value, pattern])).rows[0].ok;
}

/**
 * Registers one column per erase entry (erase = its example) and one per mask entry (mask =
 * its example) on a fresh subject table, erases subject p1 by a request and checks every
 * column: erased as the example says, verify_erasure clean, a re-insert scrubbed by the guard,
 * the masks as the examples say, and subject p2 untouched.
 */
async function endToEnd(db: TestDatabase, schema: string, erase: Entry[], masks: Entry[]): Promise<void> {
  const e = erase.map((_, i) => `e_${i}`);
  const m = masks.map((_, i) => `m_${i}`);
  const table = `${schema}.people`;
  await db.query(`create schema ${schema}`);
  await db.query(
    `create table ${table} (id text primary key, ${[
      ...erase.map((x, i) => `${e[i]} ${x.example_type}`),
      ...masks.map((x, i) => `${m[i]} ${x.example_type}`),
    ].join(', ')})`,
  );
  await db.query(`select pii.register_subject_table($1, 'id')`, [table]);
  for (const [i, x] of erase.entries())
    await db.query(`select pii.register_column($1, $2, $3, 'hide')`, [table, e[i], x.example]);
  for (const [i, x] of masks.entries())
    await db.query(`select pii.register_column($1, $2, 'keep', $3)`, [table, m[i], x.example]);
  const values = [...erase, ...masks].map((x) => x.example_value);
  const insert = `insert into ${table} (id, ${[...e, ...m].join(', ')}) values ($1, ${values.map((_, i) => `$${i + 2}`).join(', ')})`;
  await db.query(insert, ['p1', ...values]);
  await db.query(insert, ['p2', ...values]);

  const { rows } = await db.query(`select pii.request_erasure(array['p1']) as id`);
  const id = rows[0].id as string;
  while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
  expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');

  const expectErased = async () => {
    const got = await rowValues(db, table, 'p1', e);
    for (const [i, x] of erase.entries())
      expect(
        await matches(db, got[i] ?? null, x.example_result),
        `${x.example} made ${x.example_value} ${got[i]}`,
      ).toBe(true);
    expect(await rowValues(db, table, 'p1', m)).toEqual(masks.map((x) => x.example_value)); // mask entries erase: keep
    expect((await db.query('select * from pii.verify_erasure($1)', [id])).rows).toEqual([]);
  };
  await expectErased();
  expect(await rowValues(db, table, 'p2', [...e, ...m])).toEqual(values);

  // A sync puts the erased subject's row back: the guard (scrub) erases it as it arrives.
  await db.query(`delete from ${table} where id = 'p1'`);
  await db.query(insert, ['p1', ...values]);
  await expectErased();

  // The masked view shows every mask as its example says.
  await db.query('select * from pii.apply_masking()');
  const shown = await rowValues(db, `masked.people`, 'p2', m);
  for (const [i, x] of masks.entries())
    expect(
      await matches(db, shown[i] ?? null, x.example_result),
      `${x.example} showed ${x.example_value} as ${shown[i]}`,
    ).toBe(true);
  expect(await rowValues(db, `masked.people`, 'p2', e)).toEqual(erase.map(() => null)); // erase entries mask: hide
}

describe('pii_internal.erase_strategies() and pii_internal.mask_strategies()', () => {
  it('every entry has its syntax, a doc line and an example, and the docs list every strategy', async () => {
    const docs = {
      erase_strategies: readFileSync('docs/registry.md', 'utf8'),
      mask_strategies: readFileSync('docs/masking.md', 'utf8'),
    };
    for (const fn of ['erase_strategies', 'mask_strategies'] as const) {
      const entries = await catalog(db, fn);
      expect(entries.length).toBeGreaterThan(0);
      expect(new Set(entries.map((x) => x.name)).size, 'names are unique').toBe(entries.length);
      for (const x of entries) {
        expect(x.syntax.startsWith(x.name), `${x.name}: syntax ${x.syntax}`).toBe(true);
        expect(x.doc.length, `${x.name}: doc`).toBeGreaterThan(10);
        expect(x.example.startsWith(x.name), `${x.name}: example ${x.example}`).toBe(true);
        expect(x.example_type && x.example_value, `${x.name}: example column`).toBeTruthy();
        expect(
          docs[fn],
          `${fn === 'erase_strategies' ? 'docs/registry.md' : 'docs/masking.md'} lists ${x.syntax}`,
        ).toContain(`| \`${x.syntax}\``);
      }
    }
  });

  it('every strategy of both catalogs works end to end: registered, erased, verified, guarded, masked', async () => {
    await endToEnd(db, 'strat_all', await catalog(db, 'erase_strategies'), await catalog(db, 'mask_strategies'));
  });

  it('the hint of an unknown strategy lists the catalog', async () => {
    await db.query(`alter table strat_all.people add column v text`);
    for (const fn of ['erase_strategies', 'mask_strategies'] as const) {
      const syntaxes = (await catalog(db, fn)).map((x) => x.syntax).join(', ');
      const call =
        fn === 'erase_strategies'
          ? `select pii.register_column('strat_all.people', 'v', 'shred')`
          : `select pii.register_column('strat_all.people', 'v', 'null', 'blur')`;
      const err = await db.query(call).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '22023', hint: `Expected one of: ${syntaxes}.` });
    }
  });
});

describe('adding a strategy (docs/architecture.md, "Adding a strategy")', () => {
  it('the worked example is one catalog entry: checked, erased, verified and guarded with no other change', async () => {
    const recipe = readFileSync('docs/architecture.md', 'utf8');
    const row = /\n( {4}\('truncate_email',[\s\S]*?\))\n```/.exec(recipe)?.[1];
    expect(row, 'docs/architecture.md shows the truncate_email entry').toBeDefined();
    const code = readFileSync('db/code/47_strategies.sql', 'utf8');
    const withEntry = code.replace(
      /(function pii_internal\.erase_strategies\(\)[\s\S]*?\n {2}values\n)/,
      (head) => `${head}${row},\n`,
    );
    expect(withEntry).not.toBe(code);
    await added.query(withEntry); // the code file, re-applied as lethe migrate would

    const [entry] = (await catalog(added, 'erase_strategies')).filter((x) => x.name === 'truncate_email');
    expect(entry).toMatchObject({
      example: 'truncate_email',
      example_value: 'ann@example.com',
      example_result: '@example.com',
    });
    await endToEnd(added, 'strat_new', [entry!], []);

    // Its column requirement comes from the entry too.
    await added.query(`alter table strat_new.people add column n integer`);
    await expectPgError(
      added.query(`select pii.register_column('strat_new.people', 'n', 'truncate_email')`),
      '42804',
      /erase strategy "truncate_email" needs a text column; strat_new\.people\.n is integer/,
    );
  });
});
