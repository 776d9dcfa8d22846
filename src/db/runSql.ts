// One statement on its own connection, closed afterwards: for server-wide work (creating and
// dropping databases, roles) that must not run inside a pool or a transaction.
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
