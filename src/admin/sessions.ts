// Signed-in sessions, held in memory: each one owns a small pool of connections logged in
// as the person's own database role, so PostgreSQL's grants decide what they may do. The
// password lives only in that pool's config (pg needs it to open connections) and goes
// with the pool at sign-out or idle timeout.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createLethe, type Lethe } from '../api/createLethe.js';
import type pg from 'pg';
import { createPool } from '../sql/db.js';
import { LetheError, SqlState } from '../sql/errors.js';
import { type Privileges, privileges } from '../sql/privileges.js';

export interface Session {
  readonly id: string;
  readonly csrfToken: string;
  readonly lethe: Lethe;
  /** The role's own connections (lethe is bound to it). */
  readonly pool: pg.Pool;
  readonly privileges: Privileges;
  lastSeen: number;
  /** Uploaded files waiting for the person to confirm the import, by upload id. */
  readonly uploads: Map<string, PendingUpload>;
}

export interface PendingUpload {
  path: string;
  bytes: number;
  requestKey: string | undefined;
  dueAt: Date | undefined;
}

export interface SessionStoreOptions {
  /** Host, port and database to sign in to; any user or password in it is ignored. */
  databaseUrl: string;
  idleTimeoutMs: number;
  /** Connections per signed-in person. */
  poolSize?: number;
  /** Called when a session ends, to delete its pending uploads. */
  onEnd?: (session: Session) => Promise<void>;
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function sameToken(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: SessionStoreOptions) {
    this.sweeper = setInterval(() => void this.sweep(), Math.min(60_000, opts.idleTimeoutMs)).unref();
  }

  /**
   * Connects as user/password and reads the role's Lethe memberships. Rejects with
   * LetheError: 28P01 wrong user or password, 08001 database unreachable, 42501 a role
   * that is none of pii_operator, pii_auditor, pii_admin.
   */
  async signIn(user: string, password: string): Promise<Session> {
    const url = new URL(this.opts.databaseUrl);
    url.username = encodeURIComponent(user);
    url.password = encodeURIComponent(password);
    const pool = createPool({
      connectionString: url.toString(),
      application_name: 'lethe-admin',
      max: this.opts.poolSize ?? 2,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
    });
    const lethe = createLethe({ pool });
    let granted: Privileges;
    try {
      granted = await privileges(lethe.db);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    if (!granted.operator && !granted.auditor) {
      await pool.end().catch(() => undefined);
      throw new LetheError(
        `role ${granted.role} is not a member of pii_operator, pii_auditor or pii_admin`,
        SqlState.insufficientPrivilege,
        { hint: 'An administrator grants it: lethe grant pii_operator <role>' },
      );
    }
    const session: Session = {
      id: newToken(),
      csrfToken: newToken(),
      lethe,
      pool,
      privileges: granted,
      lastSeen: Date.now(),
      uploads: new Map(),
    };
    this.sessions.set(session.id, session);
    return session;
  }

  get(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (Date.now() - s.lastSeen > this.opts.idleTimeoutMs) {
      void this.end(id);
      return undefined;
    }
    s.lastSeen = Date.now();
    return s;
  }

  async end(id: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    await this.opts.onEnd?.(s).catch(() => undefined);
    await s.pool.end().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.sessions.keys()].map((id) => this.end(id)));
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (now - s.lastSeen > this.opts.idleTimeoutMs) await this.end(id);
  }
}
