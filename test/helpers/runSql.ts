// One statement on its own connection: for server-wide work (databases, roles) that must
// not run inside a test database's pool. No vitest import: globalSetup uses it too.
import pg from 'pg';

export async function runSql(url: string, sql: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
