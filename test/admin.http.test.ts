// buildAdminServer over HTTP (Fastify inject): sign-in with the database role, session
// cookies, CSRF on every form, what an auditor and an operator may not do (403, no
// database change), sign-out and idle timeout, and no submitted key in any response.
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redact } from '../src/admin/context.js';
import { buildAdminServer } from '../src/admin/server.js';
import { type AdminFixture, createAdminFixture, csrfToken, memberHandles, PASSWORD } from './helpers/admin.js';

let fx: AdminFixture;
let app: FastifyInstance;
const bodies: string[] = [];

beforeAll(async () => {
  fx = await createAdminFixture('admin_http');
  app = fx.server.app;
});
afterAll(async () => {
  // No response of this file may carry a subject key or an email.
  const all = bodies.join('\n');
  for (const id of fx.identifiers) expect(all.includes(id), `a response contains ${id}`).toBe(false);
  await fx?.close();
});

interface Res {
  statusCode: number;
  body: string;
  headers: Record<string, unknown>;
  cookies: Array<{ name: string; value: string; httpOnly?: boolean; sameSite?: string; secure?: boolean }>;
}

async function call(opts: InjectOptions, on: FastifyInstance = app): Promise<Res> {
  const res = (await on.inject(opts)) as unknown as Res;
  bodies.push(res.body, JSON.stringify(res.headers));
  return res;
}

function form(fields: Record<string, string>): { payload: string; headers: Record<string, string> } {
  return {
    payload: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  };
}

interface Agent {
  cookie: string;
  csrf: string;
}

/** GET the sign-in form, then POST it with its token and cookie. */
async function postSignIn(user: string, password = PASSWORD, on: FastifyInstance = app): Promise<Res> {
  const page = await call({ method: 'GET', url: '/sign-in' }, on);
  const pre = page.cookies.find((c) => c.name === 'lethe_sign_in')!;
  return call(
    {
      method: 'POST',
      url: '/sign-in',
      ...form({ _csrf: csrfToken(page.body), user, password }),
      cookies: { lethe_sign_in: pre.value },
    },
    on,
  );
}

async function signIn(user: string, password = PASSWORD, on: FastifyInstance = app): Promise<Agent> {
  const res = await postSignIn(user, password, on);
  expect(res.statusCode, res.body).toBe(303);
  const session = res.cookies.find((c) => c.name === 'lethe_session')!;
  const home = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: session.value } }, on);
  return { cookie: session.value, csrf: csrfToken(home.body) };
}

function post(agent: Agent, url: string, fields: Record<string, string>, csrf: string | null = agent.csrf) {
  return call({
    method: 'POST',
    url,
    ...form(csrf === null ? fields : { _csrf: csrf, ...fields }),
    cookies: { lethe_session: agent.cookie },
  });
}

async function requestCount(): Promise<number> {
  return Number((await fx.db.query(`select count(*) as n from pii.requests`)).rows[0].n);
}

function multipart(fields: Array<[string, string]>, file: string) {
  const boundary = '----lethe-test-boundary';
  const parts = fields.map(([k, v]) => `--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  parts.push(
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="people.csv"\r\ncontent-type: text/csv\r\n\r\n${file}\r\n`,
  );
  return {
    payload: `${parts.join('')}--${boundary}--\r\n`,
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

describe('POST /sign-in', () => {
  it('sets an httpOnly, SameSite=Strict session cookie (not Secure over plain HTTP) for a correct password', async () => {
    const res = await postSignIn(fx.roles.operator, PASSWORD);
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/requests');
    expect(res.cookies.find((c) => c.name === 'lethe_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Strict',
    });
    expect(res.cookies.find((c) => c.name === 'lethe_session')!.secure).toBeFalsy();
  });

  it('refuses a wrong password with 401 and no session, without echoing the password', async () => {
    const res = await postSignIn(fx.roles.operator, 'guess-9f81c');
    expect(res.statusCode).toBe(401);
    expect(res.body).toContain('wrong role name or password');
    expect(res.body).not.toContain('guess-9f81c');
    expect(res.cookies.find((c) => c.name === 'lethe_session')).toBeUndefined();
  });

  it('refuses a role that belongs to no Lethe group (403)', async () => {
    const res = await postSignIn(fx.roles.nobody, PASSWORD);
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('is not a member of pii_operator, pii_auditor or pii_admin');
  });

  it('login CSRF: a sign-in form posted without the token cookie is refused', async () => {
    const page = await call({ method: 'GET', url: '/sign-in' });
    const res = await call({
      method: 'POST',
      url: '/sign-in',
      ...form({ _csrf: csrfToken(page.body), user: fx.roles.operator, password: PASSWORD }),
    });
    expect(res.statusCode).toBe(403);
    expect(res.cookies.find((c) => c.name === 'lethe_session')).toBeUndefined();
  });

  it('marks the cookie Secure when served over TLS (X-Forwarded-Proto https behind a trusted proxy)', async () => {
    const proxied = await buildAdminServer({ databaseUrl: fx.db.url, trustProxy: true });
    try {
      const page = await call(
        { method: 'GET', url: '/sign-in', headers: { 'x-forwarded-proto': 'https' } },
        proxied.app,
      );
      const pre = page.cookies.find((c) => c.name === 'lethe_sign_in')!;
      expect(pre.secure).toBe(true);
      const res = await call(
        {
          method: 'POST',
          url: '/sign-in',
          ...form({ _csrf: csrfToken(page.body), user: fx.roles.auditor, password: PASSWORD }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' },
          cookies: { lethe_sign_in: pre.value },
        },
        proxied.app,
      );
      expect(res.cookies.find((c) => c.name === 'lethe_session')).toMatchObject({ secure: true, httpOnly: true });
    } finally {
      await proxied.close();
    }
  });
});

describe('sign-in rate limiting (over real HTTP)', () => {
  /** A server of its own on a real port (the failures it counts are its own). */
  async function listening(signInLimit?: { failures: number; windowMs: number }) {
    const server = await buildAdminServer({ databaseUrl: fx.db.url, ...(signInLimit ? { signInLimit } : {}) });
    const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const attempt = async (user: string, password: string) => {
      const page = await fetch(`${base}/sign-in`);
      const cookie = page.headers
        .getSetCookie()
        .map((c) => c.split(';')[0]!)
        .join('; ');
      const res = await fetch(`${base}/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ _csrf: csrfToken(await page.text()), user, password }).toString(),
      });
      const body = await res.text();
      bodies.push(body);
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body };
    };
    return { server, attempt };
  }

  it('password guessing: after 5 failures in a minute, 429 with Retry-After, even for the right password', async () => {
    const { server, attempt } = await listening();
    try {
      for (let i = 0; i < 5; i++) expect((await attempt(fx.roles.auditor, `guess-${i}`)).status).toBe(401);
      const refused = await attempt(fx.roles.auditor, 'guess-5');
      expect(refused.status).toBe(429);
      expect(Number(refused.retryAfter)).toBeGreaterThan(50);
      expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
      expect(refused.body).toContain('Too many failed sign-ins');
      // Not even tried: the right password gets no answer either.
      expect((await attempt(fx.roles.auditor, PASSWORD)).status).toBe(429);
      // The address is limited too: another role from it is refused as well.
      expect((await attempt(fx.roles.admin, PASSWORD)).status).toBe(429);
    } finally {
      await server.close();
    }
  });

  it('the limit ends with its window; a correct sign-in clears the role’s failures', async () => {
    const { server, attempt } = await listening({ failures: 2, windowMs: 1_500 });
    try {
      expect((await attempt(fx.roles.auditor, 'guess-a')).status).toBe(401);
      expect((await attempt(fx.roles.auditor, PASSWORD)).status).toBe(303);
      expect((await attempt(fx.roles.auditor, 'guess-b')).status).toBe(401);
      // One failure counted against the role since its success, two against the address.
      const refused = await attempt(fx.roles.auditor, PASSWORD);
      expect(refused.status).toBe(429);
      expect(refused.retryAfter).toMatch(/^[12]$/);
      await sleep(Number(refused.retryAfter) * 1000 + 100);
      expect((await attempt(fx.roles.auditor, PASSWORD)).status).toBe(303);
    } finally {
      await server.close();
    }
  });
});

describe('sessions', () => {
  it('without a session, pages redirect to the sign-in and forms are refused (401)', async () => {
    const page = await call({ method: 'GET', url: '/requests' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/sign-in');
    const before = await requestCount();
    const res = await call({ method: 'POST', url: '/erase', ...form({ keys: 'mbr-x' }) });
    expect(res.statusCode).toBe(401);
    expect(await requestCount()).toBe(before);
  });

  it('POST /sign-out ends the session: its cookie opens nothing afterwards', async () => {
    const a = await signIn(fx.roles.auditor);
    expect((await post(a, '/sign-out', {})).statusCode).toBe(303);
    const res = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: a.cookie } });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/sign-in?expired=1');
  });

  it('an idle session times out', async () => {
    const short = await buildAdminServer({ databaseUrl: fx.db.url, idleTimeoutMs: 200 });
    try {
      const a = await signIn(fx.roles.auditor, PASSWORD, short.app);
      await sleep(400);
      const res = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: a.cookie } }, short.app);
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/sign-in?expired=1');
    } finally {
      await short.close();
    }
  });

  it('pages are not cached and forbid scripts, framing and foreign form targets', async () => {
    const a = await signIn(fx.roles.auditor);
    const res = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: a.cookie } });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['content-security-policy']).toContain("form-action 'self'");
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });
});

describe('CSRF', () => {
  it('a form posted without the token is refused with 403 and queues nothing', async () => {
    const op = await signIn(fx.roles.operator);
    const [key] = await memberHandles(fx.db, 1, 1);
    const before = await requestCount();
    const res = await post(op, '/erase', { keys: key! }, null);
    expect(res.statusCode).toBe(403);
    expect(await requestCount()).toBe(before);
  });

  it("a form carrying another session's token is refused", async () => {
    const op = await signIn(fx.roles.operator);
    const other = await signIn(fx.roles.admin);
    const [key] = await memberHandles(fx.db, 1, 1);
    const before = await requestCount();
    const res = await post(op, '/erase', { keys: key! }, other.csrf);
    expect(res.statusCode).toBe(403);
    expect(await requestCount()).toBe(before);
  });

  it('an upload without the token is refused before the file is kept', async () => {
    const op = await signIn(fx.roles.operator);
    const res = await call({
      method: 'POST',
      url: '/upload',
      ...multipart([], 'subject_key\nmbr-a\n'),
      cookies: { lethe_session: op.cookie },
    });
    expect(res.statusCode).toBe(403);
    expect(await readdir(fx.server.uploadDir)).toEqual([]);
  });
});

describe('what the database role decides', () => {
  it('an auditor cannot queue an erasure: POST /erase is 403 and no request is made', async () => {
    const aud = await signIn(fx.roles.auditor);
    const [key] = await memberHandles(fx.db, 2, 2);
    const before = await requestCount();
    const res = await post(aud, '/erase', { keys: key! });
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('42501');
    expect(res.body).not.toContain(key!);
    expect(await requestCount()).toBe(before);
  });

  it('an auditor cannot upload: POST /upload is 403, nothing kept on disk or queued', async () => {
    const aud = await signIn(fx.roles.auditor);
    const [key] = await memberHandles(fx.db, 2, 2);
    const before = await requestCount();
    const res = await call({
      method: 'POST',
      url: '/upload',
      ...multipart([['_csrf', aud.csrf]], `subject_key\n${key}\n`),
      cookies: { lethe_session: aud.cookie },
    });
    expect(res.statusCode).toBe(403);
    expect(await readdir(fx.server.uploadDir)).toEqual([]);
    expect(await requestCount()).toBe(before);
  });

  it('an auditor cannot retry a request (403) and the request is unchanged', async () => {
    const op = await signIn(fx.roles.operator);
    const [key] = await memberHandles(fx.db, 3, 3);
    const made = await post(op, '/erase', { keys: key! });
    const id = String(made.headers.location).split('/').pop()!;
    await fx.db.query(`update pii.requests set status = 'failed' where id = $1`, [id]);
    const aud = await signIn(fx.roles.auditor);
    const res = await post(aud, `/requests/${id}/retry`, {});
    expect(res.statusCode).toBe(403);
    expect((await fx.db.query(`select status from pii.requests where id = $1`, [id])).rows[0].status).toBe('failed');
  });

  it('an operator retries a failed request: POST /requests/:id/retry re-queues its failed items', async () => {
    const op = await signIn(fx.roles.operator);
    const [key] = await memberHandles(fx.db, 10, 10);
    const made = await post(op, '/erase', { keys: key! });
    const id = String(made.headers.location).split('/').pop()!;
    await fx.db.query(
      `update pii_internal.request_items set status = 'failed', error = 'XX000' where request_id = $1`,
      [id],
    );
    await fx.db.query(`update pii.requests set status = 'failed', failed = 1 where id = $1`, [id]);
    const page = await call({ method: 'GET', url: `/requests/${id}`, cookies: { lethe_session: op.cookie } });
    expect(page.body).toContain('Retry failed items');
    const res = await post(op, `/requests/${id}/retry`, {});
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(`/requests/${id}`);
    const { rows } = await fx.db.query(
      `select r.status, i.status as item from pii.requests r
      join pii_internal.request_items i on i.request_id = r.id where r.id = $1`,
      [id],
    );
    expect(rows).toEqual([{ status: 'running', item: 'pending' }]);
  });

  it('GET /audit filters by action and by day', async () => {
    const aud = await signIn(fx.roles.auditor);
    const today = new Date().toISOString().slice(0, 10);
    const get = (q: string) => call({ method: 'GET', url: `/audit?${q}`, cookies: { lethe_session: aud.cookie } });
    const todays = await get(`action=request_erasure&from=${today}&to=${today}`);
    expect(todays.body).toContain('<td>request_erasure</td>');
    expect(todays.body).not.toContain('<td>grant_role</td>');
    expect((await get('from=2099-01-01')).body).toContain('No audit rows.');
    expect((await get('from=yesterday')).statusCode).toBe(400);
  });

  it('an operator is not an auditor: GET /audit is 403; an auditor reads it', async () => {
    const op = await signIn(fx.roles.operator);
    expect((await call({ method: 'GET', url: '/audit', cookies: { lethe_session: op.cookie } })).statusCode).toBe(403);
    const aud = await signIn(fx.roles.auditor);
    const res = await call({
      method: 'GET',
      url: '/audit?action=request_erasure',
      cookies: { lethe_session: aud.cookie },
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('request_erasure');
  });

  it('pii_admin both queues and reads the audit', async () => {
    const adm = await signIn(fx.roles.admin);
    const [key] = await memberHandles(fx.db, 4, 4);
    const res = await post(adm, '/erase', { keys: key!, request_key: 'ticket-admin-1' });
    expect(res.statusCode).toBe(303);
    const detail = await call({
      method: 'GET',
      url: String(res.headers.location),
      cookies: { lethe_session: adm.cookie },
    });
    expect(detail.statusCode).toBe(200);
    expect(detail.body).toContain('<h2>Audit</h2>');
    expect(detail.body).not.toContain('Your role is not a pii_auditor');
    expect(detail.body).not.toContain('ticket-admin-1');
  });
});

describe('GET /requests', () => {
  it('lists open requests past their due date first, marked overdue', async () => {
    const op = await signIn(fx.roles.operator);
    const [a, b] = await memberHandles(fx.db, 11, 12);
    const late = String((await post(op, '/erase', { keys: a! })).headers.location)
      .split('/')
      .pop()!;
    const recent = String((await post(op, '/erase', { keys: b! })).headers.location)
      .split('/')
      .pop()!;
    await fx.db.query(`update pii.requests set due_at = now() - interval '2 days' where id = $1`, [late]);
    const res = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: op.cookie } });
    const order = [...res.body.matchAll(/href="\/requests\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    expect(order[0]).toBe(late);
    expect(order.indexOf(recent)).toBeGreaterThan(0);
    expect(res.body).toMatch(/class="overdue">[^<]*\(overdue\)/);
    const queued = await call({ method: 'GET', url: '/requests?status=queued', cookies: { lethe_session: op.cookie } });
    expect(queued.body).toContain(recent.slice(0, 8));
  });
});

describe('errors never quote what was submitted', () => {
  it('POST /erase refused by the database (400 with the SQLSTATE) shows neither the keys nor the scope', async () => {
    const op = await signIn(fx.roles.operator);
    const [key] = await memberHandles(fx.db, 9, 9);
    const before = await requestCount();
    const res = await post(op, '/erase', { keys: key!, scope: 'brand-zz91' });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('is not scoped');
    expect(res.body).toContain('22023');
    expect(res.body).not.toContain(key!);
    expect(res.body).not.toContain('brand-zz91');
    expect(await requestCount()).toBe(before);
  });

  it('redact cuts every submitted value out of a message (a database error can quote its input)', () => {
    expect(redact('invalid input syntax for type bigint: "mbr-1f"; also mbr-1f', ['mbr-1f', ''])).toBe(
      'invalid input syntax for type bigint: "…"; also …',
    );
  });
});

describe('POST /lookup', () => {
  it('answers from the keyed hash and never echoes the key', async () => {
    const op = await signIn(fx.roles.operator);
    const [erased, never] = await memberHandles(fx.db, 5, 6);
    await post(op, '/erase', { keys: erased! });
    const yes = await post(op, '/lookup', { key: erased! });
    expect(yes.statusCode).toBe(200);
    expect(yes.body).toMatch(/queued but not finished|was erased/);
    const no = await post(op, '/lookup', { key: never! });
    expect(no.body).toContain('No erasure is recorded');
    for (const r of [yes, no]) {
      expect(r.body).not.toContain(erased!);
      expect(r.body).not.toContain(never!);
    }
  });

  it('is a POST only: a key in the query string is not looked up', async () => {
    const op = await signIn(fx.roles.operator);
    const res = await call({ method: 'GET', url: '/lookup?key=mbr-x', cookies: { lethe_session: op.cookie } });
    expect(res.body).not.toContain('erasure is recorded');
  });
});

describe('GET /requests/:id/evidence', () => {
  it('JSON and CSV carry a SHA-256 over the pack and no subject key or hash', async () => {
    const op = await signIn(fx.roles.operator);
    const [key] = await memberHandles(fx.db, 7, 7);
    const made = await post(op, '/erase', { keys: key! });
    const id = String(made.headers.location).split('/').pop()!;
    // What a worker does (test/worker.test.ts runs the real one; the browser test too).
    await fx.db.query(`select pii.process_request_chunk($1::uuid), pii.finish_request($1::uuid)`, [id]);
    const json = await call({
      method: 'GET',
      url: `/requests/${id}/evidence.json`,
      cookies: { lethe_session: op.cookie },
    });
    expect(json.statusCode, json.body).toBe(200);
    expect(json.headers['content-disposition']).toContain(`lethe-evidence-${id}.json`);
    const file = JSON.parse(json.body);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(JSON.stringify(file.pack)).digest('hex')).toBe(file.sha256);
    expect(file.pack.request).toMatchObject({ id, requestedBy: fx.roles.operator, source: 'admin', status: 'done' });
    expect(file.pack.verification).toMatchObject({ verified: true, residualsByTable: {} });
    expect(file.pack.rowsAffected).toEqual({ 'acct.members': 1, 'acct.logins': 0 });
    const hashes = (
      await fx.db.query(
        `select encode(subject_hash, 'hex') as h from pii_internal.request_items where request_id = $1`,
        [id],
      )
    ).rows;
    for (const { h } of hashes) expect(json.body).not.toContain(h);

    const csv = await call({
      method: 'GET',
      url: `/requests/${id}/evidence.csv`,
      cookies: { lethe_session: op.cookie },
    });
    const lines = csv.body.trimEnd().split('\n');
    const last = lines.pop()!;
    expect(last).toMatch(/^sha256,,[0-9a-f]{64}$/);
    expect(
      createHash('sha256')
        .update(`${lines.join('\n')}\n`)
        .digest('hex'),
    ).toBe(last.split(',')[2]);
    expect(lines).toContain(`request,requested_by,${fx.roles.operator}`);
  });
});

describe('GET /requests/:id/items', () => {
  it('pages a request of 2,500 subjects by keyset, 50 a page: every subject once, the unmatched ones alone', async () => {
    const op = await signIn(fx.roles.operator);
    const members = await memberHandles(fx.db, 20, 29);
    const { rows } = await fx.db.query(
      `select pii.request_erasure($1::text[] || array(select 'unknown-' || i from generate_series(1, 2490) i)) as id`,
      [members],
    );
    const id: string = rows[0].id;
    const detail = await call({ method: 'GET', url: `/requests/${id}`, cookies: { lethe_session: op.cookie } });
    expect(detail.statusCode, detail.body).toBe(200);
    expect(detail.body).toContain('first 50 of 2490');
    expect(detail.body).toMatch(new RegExp(`href="/requests/${id}/items\\?only=unmatched&amp;after=[0-9a-f]{64}"`));

    /** Follows the next links from the first page; the hashes in page order. */
    const walk = async (only?: string): Promise<string[]> => {
      const seen: string[] = [];
      let url: string | undefined = `/requests/${id}/items${only ? `?only=${only}` : ''}`;
      while (url) {
        const page = await call({ method: 'GET', url, cookies: { lethe_session: op.cookie } });
        expect(page.statusCode, page.body).toBe(200);
        const hashes = [...page.body.matchAll(/<td class="hash">([0-9a-f]{64})<\/td>/g)].map((m) => m[1]!);
        expect(hashes.length).toBeLessThanOrEqual(50);
        seen.push(...hashes);
        url = /href="([^"]+)">next →/.exec(page.body)?.[1]?.replaceAll('&amp;', '&');
      }
      return seen;
    };
    const expected = async (where: string) =>
      (
        await fx.db.query(
          `select encode(subject_hash, 'hex') as h from pii_internal.request_items where request_id = $1 and ${where} order by subject_hash`,
          [id],
        )
      ).rows.map((r) => r.h);
    const all = await walk();
    expect(all).toEqual(await expected('true'));
    expect(all).toHaveLength(2500);
    const unmatched = await walk('unmatched');
    expect(unmatched).toEqual(await expected('not matched'));
    expect(unmatched).toHaveLength(2490);
    expect(await walk('failed')).toEqual([]);
  });

  it('refuses an after that is not a subject hash (400)', async () => {
    const op = await signIn(fx.roles.operator);
    const { rows } = await fx.db.query(`select id from pii.requests limit 1`);
    const res = await call({
      method: 'GET',
      url: `/requests/${rows[0].id}/items?after=zz`,
      cookies: { lethe_session: op.cookie },
    });
    expect(res.statusCode).toBe(400);
  });
});

describe('GET/POST /retention', () => {
  const policy = 'inactive-members';
  const count = async (sql: string, params: unknown[] = []) => Number((await fx.db.query(sql, params)).rows[0].n);

  beforeAll(async () => {
    await fx.db.query(`grant usage on schema acct to ${fx.roles.operator}, ${fx.roles.admin};
      grant select on acct.members to ${fx.roles.operator}, ${fx.roles.admin}`);
    await fx.db.query(`select pii.set_retention_policy($1, $2, 5)`, [
      policy,
      `select m.handle from acct.members m where m.display_name in ('Member 30', 'Member 31', 'Member 32')`,
    ]);
  });

  it('lists the policies, the current version not approved', async () => {
    const op = await signIn(fx.roles.operator);
    const res = await call({ method: 'GET', url: '/retention', cookies: { lethe_session: op.cookie } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).toMatch(new RegExp(`<a href="/retention/${policy}">${policy}</a>`));
    expect(res.body).toContain('not approved');
  });

  it('an operator previews (one audit row): candidates, rows per table and keyed hashes, never a key', async () => {
    const op = await signIn(fx.roles.operator);
    const audits = await count(`select count(*) as n from pii.audit where action = 'preview_retention'`);
    const res = await post(op, `/retention/${policy}/preview`, {});
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).toContain('3 subject(s) would be erased now (limit 5)');
    expect(res.body).toMatch(/<td>acct\.members<\/td>\s*<td class="num">3<\/td>/);
    expect([...res.body.matchAll(/<li>([0-9a-f]{64})<\/li>/g)]).toHaveLength(3);
    expect(await count(`select count(*) as n from pii.audit where action = 'preview_retention'`)).toBe(audits + 1);
    // An operator is offered no approval.
    expect(res.body).not.toContain('Approve version');
  });

  it('an auditor cannot preview and an operator cannot approve (403, nothing changes); pii_admin approves', async () => {
    const aud = await signIn(fx.roles.auditor);
    const audits = await count(`select count(*) as n from pii.audit`);
    expect((await post(aud, `/retention/${policy}/preview`, {})).statusCode).toBe(403);
    const op = await signIn(fx.roles.operator);
    expect((await post(op, `/retention/${policy}/approve`, { version: '1' })).statusCode).toBe(403);
    expect(await count(`select count(*) as n from pii.audit`)).toBe(audits);
    const approved = async () =>
      (await fx.db.query(`select approved_by from pii.retention_policies where policy_name = $1`, [policy])).rows[0]
        .approved_by;
    expect(await approved()).toBeNull();

    const adm = await signIn(fx.roles.admin);
    const page = await call({ method: 'GET', url: `/retention/${policy}`, cookies: { lethe_session: adm.cookie } });
    expect(page.body).toContain('Approve version 1');
    const res = await post(adm, `/retention/${policy}/approve`, { version: '1' });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(`/retention/${policy}?approved=1`);
    expect(await approved()).toBe(fx.roles.admin);
    // An approval of a version that is not the current one: 409 with the SQLSTATE.
    const stale = await post(adm, `/retention/${policy}/approve`, { version: '7' });
    expect(stale.statusCode).toBe(409);
    expect(stale.body).toContain('55000');
  });
});

describe('GET/POST /holds', () => {
  it('pii_admin places a hold for typed keys (never shown again) and releases it; pii.holds records both', async () => {
    const adm = await signIn(fx.roles.admin);
    const keys = await memberHandles(fx.db, 33, 34);
    const placed = await post(adm, '/holds', {
      keys: keys.join('\n'),
      reason: 'chargeback dispute',
      until: '2099-12-31',
      tables: 'acct.logins',
    });
    expect(placed.statusCode, placed.body).toBe(303);
    const { rows } = await fx.db.query(
      `select hold_id, subjects, tables, status from pii.holds where reason = 'chargeback dispute'`,
    );
    expect(rows).toEqual([{ hold_id: expect.any(String), subjects: 2, tables: ['acct.logins'], status: 'active' }]);
    const list = await call({ method: 'GET', url: '/holds?placed', cookies: { lethe_session: adm.cookie } });
    expect(list.body).toContain('The hold was placed.');
    expect(list.body).toContain('chargeback dispute');
    expect(list.body).toContain(`action="/holds/${rows[0].hold_id}/release"`);

    // An auditor sees the hold, is offered no release, and the database refuses one.
    const aud = await signIn(fx.roles.auditor);
    const seen = await call({ method: 'GET', url: '/holds', cookies: { lethe_session: aud.cookie } });
    expect(seen.statusCode).toBe(200);
    expect(seen.body).toContain('chargeback dispute');
    expect(seen.body).not.toContain('/release"');
    expect((await post(aud, `/holds/${rows[0].hold_id}/release`, {})).statusCode).toBe(403);

    const released = await post(adm, `/holds/${rows[0].hold_id}/release`, {});
    expect(released.statusCode).toBe(303);
    expect((await fx.db.query(`select status from pii.holds where hold_id = $1`, [rows[0].hold_id])).rows).toEqual([
      { status: 'released' },
    ]);
  });

  it('an operator may not see holds (403 from the database; not in the navigation) nor place one', async () => {
    const op = await signIn(fx.roles.operator);
    const home = await call({ method: 'GET', url: '/requests', cookies: { lethe_session: op.cookie } });
    expect(home.body).not.toContain('href="/holds"');
    expect((await call({ method: 'GET', url: '/holds', cookies: { lethe_session: op.cookie } })).statusCode).toBe(403);
    const before = await fx.db.query(`select count(*)::int as n from pii.legal_holds`);
    const keys = await memberHandles(fx.db, 35, 35);
    const res = await post(op, '/holds', { keys: keys[0]!, reason: 'x', until: '2099-01-01', tables: '' });
    expect(res.statusCode).toBe(403);
    expect(res.body).not.toContain(keys[0]!);
    expect((await fx.db.query(`select count(*)::int as n from pii.legal_holds`)).rows).toEqual(before.rows);
  });

  it('a bad date is refused (400) without echoing the keys', async () => {
    const adm = await signIn(fx.roles.admin);
    const keys = await memberHandles(fx.db, 36, 36);
    const res = await post(adm, '/holds', { keys: keys[0]!, reason: 'audit', until: '2020-01-01', tables: '' });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('until must be a date after today');
    expect(res.body).not.toContain(keys[0]!);
  });
});

describe('lethe admin (the CLI command, a real process)', () => {
  it('serves the pages, logs one line per response without any submitted key, and stops on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['bin/lethe.js', 'admin', '--listen', '127.0.0.1:0'], {
      env: { ...process.env, DATABASE_URL: fx.db.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      for (let i = 0; i < 300 && !/listening on http/.test(stderr); i++) await sleep(50);
      const base = /listening on (http:\/\/\S+)/.exec(stderr)![1]!;
      const signInPage = await fetch(`${base}/sign-in`);
      const pre = signInPage.headers.getSetCookie()[0]!.split(';')[0]!;
      const signedIn = await fetch(`${base}/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: pre },
        body: new URLSearchParams({
          _csrf: csrfToken(await signInPage.text()),
          user: fx.roles.operator,
          password: PASSWORD,
        }).toString(),
      });
      expect(signedIn.status).toBe(303);
      const cookie = signedIn.headers
        .getSetCookie()
        .map((c) => c.split(';')[0]!)
        .find((c) => c.startsWith('lethe_session='))!;
      const lookupPage = await fetch(`${base}/lookup`, { headers: { cookie } });
      const [key] = await memberHandles(fx.db, 8, 8);
      const answer = await fetch(`${base}/lookup`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ _csrf: csrfToken(await lookupPage.text()), key: key! }).toString(),
      });
      const body = await answer.text();
      bodies.push(body);
      expect(answer.status).toBe(200);
      for (let i = 0; i < 100 && !/POST \/lookup/.test(stderr); i++) await sleep(20); // the line follows the response
      expect(stderr).toMatch(/POST \/lookup 200 \d+ms/);
      expect(stderr).not.toContain(key!);
      expect(stderr).not.toContain(PASSWORD);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
