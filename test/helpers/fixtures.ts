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

/**
 * pii.request_erasure with its job limited to one attempt, set in the request's own
 * transaction (before the job becomes visible: a worker's resume would reset it), so the
 * worker records a failure on the request at once.
 */
export async function requestErasureWithOneAttempt(db: TestDatabase, keys: string[]): Promise<string> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    const id = (await client.query('select pii.request_erasure($1::text[]) as id', [keys])).rows[0].id as string;
    await client.query(`update graphile_worker._private_jobs set max_attempts = 1 where key = $1`, [
      `lethe:request:${id}`,
    ]);
    await client.query('commit');
    return id;
  } finally {
    client.release();
  }
}
