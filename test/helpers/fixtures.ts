import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { TestDatabase } from './testDatabase.js';

/** Runs a SQL file from test/fixtures in the test database. */
export async function loadFixture(db: TestDatabase, ...names: string[]): Promise<void> {
  for (const name of names) {
    await db.query(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
  }
}

/** Asserts that a query fails with the given SQLSTATE and a message matching the pattern. */
export async function expectPgError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e as { code?: string; message?: string },
  );
  expect(err, `expected SQLSTATE ${code}, but the statement succeeded`).toBeDefined();
  expect({ code: err?.code, message: err?.message }).toMatchObject({ code, message: expect.stringMatching(message) });
}
