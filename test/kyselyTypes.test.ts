// The TypeScript side must agree with the migrations: src/db/types.ts is what
// kysely-codegen makes of a freshly migrated database, and the result columns the
// src/sql wrappers read are the ones the SQL functions return.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKyselyCodegen, TYPES_FILE } from '../scripts/codegen.js';
import { LINT_COLUMNS } from '../src/sql/lint.js';
import { REQUEST_ITEMS_COLUMNS } from '../src/sql/requestItems.js';
import { REQUEST_STATUS_COLUMNS } from '../src/sql/requestStatus.js';
import { VERIFY_ERASURE_COLUMNS } from '../src/sql/verifyErasure.js';
import { WAS_ERASED_COLUMNS } from '../src/sql/wasErased.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
const dir = mkdtempSync(join(tmpdir(), 'lethe-codegen-'));

beforeAll(async () => {
  db = await createTestDatabase('kysely_types');
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('generated Kysely types', () => {
  it('src/db/types.ts is up to date with the migrations (run `npm run codegen` if not)', async () => {
    const out = join(dir, 'types.ts');
    await runKyselyCodegen(db.url, out);
    expect(readFileSync(out, 'utf8'), 'src/db/types.ts drifted from db/migrations: run `npm run codegen`').toBe(
      readFileSync(TYPES_FILE, 'utf8'),
    );
  }, 120_000);

  it.each([
    ['pii.request_status(uuid)', REQUEST_STATUS_COLUMNS],
    ['pii.request_items(uuid)', REQUEST_ITEMS_COLUMNS],
    ['pii.verify_erasure(uuid)', VERIFY_ERASURE_COLUMNS],
    ['pii.was_erased(text,text,text)', WAS_ERASED_COLUMNS],
    ['pii.lint()', LINT_COLUMNS],
  ])('the columns read from %s are the ones it returns', async (fn, columns) => {
    const { rows } = await db.query(
      `select array_agg(a.name order by a.ord) as names
         from pg_proc p, unnest(p.proargnames, p.proargmodes) with ordinality as a (name, mode, ord)
        where p.oid = $1::regprocedure and a.mode = 't'`,
      [fn],
    );
    expect(rows[0].names).toEqual([...columns]);
  });
});
