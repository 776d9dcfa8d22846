// Kysely's runtime, loaded from its CommonJS build. Why: under tsx (the CLI in a clone, the
// tests, the scripts) every ESM module goes through tsx's loader hooks, and Kysely's ESM build
// is hundreds of files: importing it took 1.5-2 s, which every `lethe` command paid
// before doing anything. The CommonJS build loads in about a quarter of that. Types still
// come from the package's own declarations; Kysely objects are duck-typed (executors,
// operation nodes), so a Kysely instance or transaction the application built from the
// ESM build works with these functions too (test/api.test.ts checks it).
import { createRequire } from 'node:module';
import type * as K from 'kysely';

const kysely = createRequire(import.meta.url)('kysely') as typeof K;

export const Kysely = kysely.Kysely;
export type Kysely<DB> = K.Kysely<DB>;
export const PostgresDialect = kysely.PostgresDialect;
export const sql = kysely.sql;
