// Shared by the admin's HTTP and browser tests: a database with text-keyed subjects
// ('mbr-<md5>', distinctive enough to search every response for), login roles for each
// Lethe group, and an admin server on it.
import { buildAdminServer, type AdminServer, type AdminServerOptions } from '../../src/admin/server.js';
import { loadFixture } from './fixtures.js';
import { createTestDatabase, type TestDatabase } from './testDatabase.js';

export const PASSWORD = 'correct horse battery staple';

export interface AdminFixture {
  db: TestDatabase;
  roles: { operator: string; auditor: string; admin: string; nobody: string };
  /** Every subject key and email in the fixture: none may ever appear in a response. */
  identifiers: string[];
  server: AdminServer;
  close(): Promise<void>;
}

export async function createAdminFixture(name: string, opts: Partial<AdminServerOptions> = {}): Promise<AdminFixture> {
  const db = await createTestDatabase(name);
  await loadFixture(db, 'requests_text_keys.sql');
  // More members, so an upload has enough rows for its first-20 preview.
  await db.query(`insert into acct.members (handle, email, display_name)
    select 'mbr-' || md5('member' || i), 'member' || i || '@example.org', 'Member ' || i from generate_series(7, 40) i`);
  const roles = {
    operator: `${db.name}_op`,
    auditor: `${db.name}_aud`,
    admin: `${db.name}_adm`,
    nobody: `${db.name}_nobody`,
  };
  const groups: Record<keyof typeof roles, string> = {
    operator: 'pii_operator',
    auditor: 'pii_auditor',
    admin: 'pii_admin',
    nobody: '',
  };
  for (const [k, role] of Object.entries(roles) as Array<[keyof typeof roles, string]>) {
    await db.query(`create role ${role} login password '${PASSWORD}' ${groups[k] ? `in role ${groups[k]}` : ''}`);
  }
  const { rows } = await db.query<{ handle: string; email: string }>(`select handle, email from acct.members`);
  const identifiers = rows.flatMap((r) => [r.handle, r.email]);
  const server = await buildAdminServer({ databaseUrl: db.url, ...opts });
  return {
    db,
    roles,
    identifiers,
    server,
    close: async () => {
      await server.close();
      for (const role of Object.values(roles)) await db.query(`drop role if exists ${role}`).catch(() => undefined);
      await db.drop();
    },
  };
}

/** The handles of members n..m (1-based), as the fixture makes them. */
export async function memberHandles(db: TestDatabase, from: number, to: number): Promise<string[]> {
  const { rows } = await db.query<{ h: string }>(
    `select 'mbr-' || md5('member' || i) as h from generate_series($1::int, $2::int) i order by i`,
    [from, to],
  );
  return rows.map((r) => r.h);
}

export function csrfToken(body: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!m) throw new Error('no CSRF token on the page');
  return m[1]!;
}
