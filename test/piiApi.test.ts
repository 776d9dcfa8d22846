// lethe pii-api as a real process on its own PostgreSQL (log_statement = all), called
// with fetch: single and bulk lookups, bearer keys and OAuth client credentials, every
// error status, revocation without restart, one audit row per call, and no value, key or
// data key anywhere in the server's output or the PostgreSQL log; then the KEK moved out of
// the database (lethe pii-api kek rotate) and the server given it with --kek-file.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../src/db/embeddedPostgres.js';
import { migrate } from '../src/db/migrate.js';
import { runLethe, startPiiApi } from './helpers/letheProcess.js';
import { connectAs } from './helpers/testDatabase.js';

const VALUES = {
  1: { email: 'ada.lovelace@example.com', phone: '+44 20 7946 0958' },
  2: { email: 'grace.hopper@example.net', phone: '+1 202 555 0147' },
  3: { email: 'alan.turing@example.org', phone: '+44 161 496 0731' },
};

let cluster: EmbeddedPostgresHandle;
const pgLog: string[] = [];
let adminUrl: string;
let admin: pg.Client;
let server: ChildProcess;
let serverOutput = '';
let base: string;
let dispatcherKey: { id: string; key: string };
let pingKey: { id: string; key: string };
let senderPassword: string;
const tokens: Record<number, { email: string; phone: string }> = {};

const lethe = (args: string[], url = adminUrl) => runLethe(args, { DATABASE_URL: url });

async function createKey(name: string, scope?: string): Promise<{ id: string; key: string }> {
  const r = await lethe(['pii-api', 'keys', 'create', name, '--json', ...(scope ? ['--scope', scope] : [])]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function call(path: string, init: RequestInit & { key?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.key) headers.set('authorization', `Bearer ${init.key}`);
  if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'application/json');
  return fetch(base + path, { ...init, headers });
}

const lookup = (body: unknown, key = dispatcherKey.key) =>
  call('/v1/pii/lookup', { method: 'POST', key, body: JSON.stringify(body) });

/** lethe pii-api as the sender role, on a free port, until killed; its output goes to onOutput. */
const startServer = (args: string[], onOutput: (d: string) => void) =>
  startPiiApi(args, { DATABASE_URL: connectAs(adminUrl, 'sender', senderPassword) }, onOutput);

async function auditRows(action: string): Promise<number> {
  return Number((await admin.query('select count(*) as n from pii.audit where action = $1', [action])).rows[0].n);
}

beforeAll(async () => {
  cluster = await startEmbeddedPostgres({ log: (line) => pgLog.push(line) });
  const setup = new pg.Client(cluster.url);
  await setup.connect();
  await setup.query('create database pii_api');
  await setup.end();
  adminUrl = withDatabaseName(cluster.url, 'pii_api');
  await migrate(adminUrl);
  admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`
    create table public.members (id bigint primary key, email_token text, phone_token text);
    select pii.register_subject_table('public.members', 'id');
    select pii.register_column('public.members', 'email_token', 'null', 'clear', 'token');
    select pii.register_column('public.members', 'phone_token', 'null', 'clear', 'token');
    alter database pii_api set log_statement = 'all';`);
  senderPassword = randomBytes(12).toString('hex');
  await admin.query(`create role sender login password '${senderPassword}'; grant pii_dispatcher to sender`);

  // Signup through a fresh session, so its statements are logged. The application's own
  // bind parameters (the values it tokenizes) would be logged too: docs/vault.md says to
  // turn that off for the signup role, as here.
  const app = new pg.Client(adminUrl);
  await app.connect();
  await app.query('set log_parameter_max_length = 0');
  for (const [id, v] of Object.entries(VALUES)) {
    const { rows } = await app.query(
      `insert into public.members values ($1::bigint, pii.tokenize($1::text, 'email', $2), pii.tokenize($1::text, 'phone', $3))
       returning email_token, phone_token`,
      [id, v.email, v.phone],
    );
    tokens[Number(id)] = { email: rows[0].email_token, phone: rows[0].phone_token };
  }
  await app.end();

  dispatcherKey = await createKey('moengage');
  pingKey = await createKey('monitor', 'ping');

  ({ child: server, base } = await startServer([], (d) => (serverOutput += d)));
}, 120_000);

afterAll(async () => {
  server?.kill('SIGKILL');
  await admin?.end().catch(() => undefined);
  await cluster?.stop();
});

describe('lethe pii-api', () => {
  it('GET /v1/pii/:token answers token, kind, value and status', async () => {
    const res = await call(`/v1/pii/${tokens[1]!.email}`, { key: dispatcherKey.key });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ token: tokens[1]!.email, kind: 'email', value: VALUES[1].email, status: 'ok' });
  });

  it('POST /v1/pii/lookup answers in request order, unknown tokens included, with one audit row per call', async () => {
    const before = await auditRows('detokenize');
    const res = await lookup({ tokens: [tokens[2]!.phone, 'tok_nope', tokens[1]!.phone], purpose: 'campaign:7' });
    expect(res.status).toBe(200);
    expect((await res.json()).results).toEqual([
      { token: tokens[2]!.phone, kind: 'phone', value: VALUES[2].phone, status: 'ok' },
      { token: 'tok_nope', kind: null, value: null, status: 'unknown' },
      { token: tokens[1]!.phone, kind: 'phone', value: VALUES[1].phone, status: 'ok' },
    ]);
    expect(await auditRows('detokenize')).toBe(before + 1);
    const { rows } = await admin.query(
      `select actor, details from pii.audit where action = 'detokenize' order by id desc limit 1`,
    );
    expect(rows[0]).toMatchObject({
      actor: 'sender',
      details: { purpose: 'campaign:7', tokens: 3, client: `key:${dispatcherKey.id}` },
    });
  });

  it('401 without a key, with a malformed header and with an unknown key', async () => {
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Basic abc' },
      { authorization: `Bearer lethe_pk_${'x'.repeat(43)}` },
    ]) {
      const res = await call('/v1/pii/lookup', {
        method: 'POST',
        headers,
        body: JSON.stringify({ tokens: ['t'], purpose: 'p' }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect((await call(`/v1/pii/${tokens[1]!.email}`)).status).toBe(401);
  });

  it('400 on a malformed body, no tokens, more than 1000 tokens, a missing or bad purpose', async () => {
    const bad = await call('/v1/pii/lookup', { method: 'POST', key: dispatcherKey.key, body: '{"tokens": [' });
    expect(bad.status).toBe(400);
    for (const body of [
      { tokens: [], purpose: 'p' },
      { tokens: Array.from({ length: 1001 }, (_, i) => `tok_${i}`), purpose: 'p' },
      { tokens: ['tok_1'] },
      { tokens: ['tok_1'], purpose: 'ada.lovelace@example.com' },
      { tokens: 'tok_1', purpose: 'p' },
      { tokens: ['tok_1'], purpose: 'p', extra: true },
    ]) {
      const res = await lookup(body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect((await res.json()).error).toBe('bad_request');
    }
    expect((await lookup({ tokens: Array.from({ length: 1000 }, (_, i) => `tok_${i}`), purpose: 'p' })).status).toBe(
      200,
    );
  });

  it('403 for a key without the dispatcher right, which still authenticates', async () => {
    expect((await lookup({ tokens: [tokens[1]!.email], purpose: 'p' }, pingKey.key)).status).toBe(403);
    expect((await call(`/v1/pii/${tokens[1]!.email}`, { key: pingKey.key })).status).toBe(403);
    const ping = await call('/v1/ping', { key: pingKey.key });
    expect(await ping.json()).toEqual({ ok: true, scope: 'ping' });
  });

  it('POST /oauth/token issues access tokens for client credentials (form body or HTTP Basic)', async () => {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: dispatcherKey.id,
      client_secret: dispatcherKey.key,
    });
    const res = await fetch(`${base}/oauth/token`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const grant = await res.json();
    expect(grant).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'dispatcher' });
    const viaToken = await lookup({ tokens: [tokens[3]!.email], purpose: 'oauth' }, grant.access_token);
    expect((await viaToken.json()).results[0].value).toBe(VALUES[3].email);

    const basic = Buffer.from(`${dispatcherKey.id}:${dispatcherKey.key}`).toString('base64');
    const viaBasic = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(viaBasic.status).toBe(200);

    const wrongSecret = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: dispatcherKey.id,
      client_secret: pingKey.key,
    });
    expect((await fetch(`${base}/oauth/token`, { method: 'POST', body: wrongSecret })).status).toBe(401);
    const wrongGrant = new URLSearchParams({
      grant_type: 'password',
      client_id: dispatcherKey.id,
      client_secret: dispatcherKey.key,
    });
    const refused = await fetch(`${base}/oauth/token`, { method: 'POST', body: wrongGrant });
    expect(refused.status).toBe(400);
    expect((await refused.json()).error).toBe('unsupported_grant_type');
    const forged = `${grant.access_token.slice(0, -2)}xx`;
    expect((await lookup({ tokens: ['t'], purpose: 'p' }, forged)).status).toBe(401);
  });

  it('answers erased once the subject is erased', async () => {
    await admin.query(`select * from pii.erase_subjects(array['3'])`);
    const res = await lookup({ tokens: [tokens[3]!.email, tokens[3]!.phone], purpose: 'after-erasure' });
    expect(
      (await res.json()).results.map((r: { status: string; value: string | null }) => [r.status, r.value]),
    ).toEqual([
      ['erased', null],
      ['erased', null],
    ]);
  });

  it('keys list shows names and scopes, never keys; revoke takes effect without restart, OAuth tokens included', async () => {
    const listed = await lethe(['pii-api', 'keys', 'list', '--json']);
    expect(JSON.parse(listed.stdout).map((k: { name: string; scope: string }) => [k.name, k.scope])).toEqual([
      ['moengage', 'dispatcher'],
      ['monitor', 'ping'],
    ]);
    expect(listed.stdout).not.toContain(dispatcherKey.key);
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: dispatcherKey.id,
      client_secret: dispatcherKey.key,
    });
    const accessToken = (await (await fetch(`${base}/oauth/token`, { method: 'POST', body: form })).json())
      .access_token;

    const revoked = await lethe(['pii-api', 'keys', 'revoke', 'moengage']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await lookup({ tokens: [tokens[1]!.email], purpose: 'p' })).status).toBe(401);
    expect((await lookup({ tokens: [tokens[1]!.email], purpose: 'p' }, accessToken)).status).toBe(401);
    expect((await lethe(['pii-api', 'keys', 'revoke', 'moengage'])).code).toBe(1);
  });

  it('refuses bad usage with exit code 2: a bad --listen, an unknown key scope', async () => {
    const listen = await lethe(['pii-api', '--listen', 'localhost']);
    expect([listen.code, listen.stderr]).toEqual([2, expect.stringContaining('--listen expects host:port')]);
    const scope = await lethe(['pii-api', 'keys', 'create', 'x', '--scope', 'admin']);
    expect([scope.code, scope.stderr]).toEqual([2, expect.stringContaining('--scope must be dispatcher or ping')]);
  });

  it('logs route, status, token count and latency, and no value, key or data key reaches any log', async () => {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
    const access = serverOutput
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    expect(access).toContainEqual(
      expect.objectContaining({
        method: 'POST',
        route: '/v1/pii/lookup',
        status: 200,
        tokens: 3,
        ms: expect.any(Number),
      }),
    );
    expect(access).toContainEqual(expect.objectContaining({ route: '/v1/pii/:token', status: 200, tokens: 1 }));
    expect(access.some((l) => l.status === 400) && access.some((l) => l.status === 403)).toBe(true);

    // Read the keys with this session's statements kept out of the log.
    await admin.query(`set log_statement = 'none'`);
    const { rows } = await admin.query(
      `select encode(k.kek, 'hex') as kek,
              (select array_agg(encode(pii_crypto.decrypt(v.wrapped_key, k.kek, 'aes'), 'hex')) from pii_internal.vault_keys v) as data_keys
       from pii_internal.vault_kek k`,
    );
    const secrets = [
      ...Object.values(VALUES).flatMap((v) => [v.email, v.phone]),
      dispatcherKey.key,
      pingKey.key,
      rows[0].kek,
      ...rows[0].data_keys,
    ];
    const log = pgLog.join('\n');
    expect(log).toMatch(/execute [^:]*: select .*pii\.detokenize/);
    expect(log).toMatch(/statement: .*pii\.tokenize|execute [^:]*: .*pii\.tokenize/);
    expect(log).toMatch(/create_api_key/);
    for (const secret of secrets) {
      expect(serverOutput).not.toContain(secret);
      expect(log).not.toContain(secret);
    }
  }, 180_000);
  it('kek rotate --to external moves the KEK to a file: a server without it answers 503, with --kek-file it serves, and the KEK reaches no log', async () => {
    const kekFile = join(mkdtempSync(join(tmpdir(), 'lethe-kek-')), 'vault.kek');
    const refused = await lethe(['pii-api', 'kek', 'rotate', '--to', 'external']);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining('needs --new-kek-file')]);
    const rotated = await lethe(['pii-api', 'kek', 'rotate', '--to', 'external', '--new-kek-file', kekFile, '--json']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(JSON.parse(rotated.stdout)).toEqual({ kekLocation: 'external', rewrappedKeys: 2 });
    expect(statSync(kekFile).mode & 0o777).toBe(0o600);
    const kek = readFileSync(kekFile, 'utf8').trim();
    const key = await createKey('moengage-external');

    let output = rotated.stdout + rotated.stderr;
    const lookupAt = (url: string) =>
      fetch(`${url}/v1/pii/lookup`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tokens: [tokens[1]!.email, tokens[2]!.phone], purpose: 'campaign:8' }),
      });
    for (const [args, expected] of [
      [[], { status: 503, error: 'vault_locked' }],
      [['--kek-file', kekFile], { status: 200, values: [VALUES[1].email, VALUES[2].phone] }],
    ] as const) {
      const running = await startServer([...args], (d) => (output += d));
      try {
        const res = await lookupAt(running.base);
        const body = await res.json();
        expect(
          res.status === 200
            ? { status: 200, values: body.results.map((r: { value: string }) => r.value) }
            : { status: res.status, error: body.error },
        ).toEqual(expected);
      } finally {
        running.child.kill('SIGTERM');
        await new Promise((resolve) => running.child.once('exit', resolve));
      }
    }

    // This session's statements stay out of the log (set in the test above).
    const { rows } = await admin.query(
      `select array_agg(encode(pii_crypto.decrypt(v.wrapped_key, decode($1, 'hex'), 'aes'), 'hex')) as data_keys
       from pii_internal.vault_keys v`,
      [kek],
    );
    const log = pgLog.join('\n');
    expect(log).toMatch(/pii\.vault_rotate_kek/);
    for (const secret of [kek, key.key, ...rows[0].data_keys]) {
      expect(output).not.toContain(secret);
      expect(log).not.toContain(secret);
    }
  }, 120_000);
});
