// Measures `lethe admin`: page times of the requests list and a request's detail, and
// the server's peak memory while a CSV of a million ids is uploaded and imported.
//
//   npm run bench:admin [-- --customers 1000000] [--requests 2000] [--database-url postgres://…/postgres]
//
// The server runs as its own process (`lethe admin`), so its peak RSS (VmHWM) is its own.
// Timings are medians of repeated GETs over HTTP on loopback, signed in as a pii_admin.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { withDatabase } from '../src/db/databaseUrl.js';
import { withCustomersBench } from './customersBench.js';

const LETHE = fileURLToPath(new URL('../bin/lethe.js', import.meta.url));
const PASSWORD = randomBytes(12).toString('hex');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function startServer(url: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [LETHE, 'admin', '--listen', `127.0.0.1:${port}`, '--database-url', url], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lethe admin exited (${code}): ${err}`)));
  });
  child.stderr!.resume();
  return child;
}

/** Peak resident memory of a process so far (Linux: VmHWM), in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024);
}

class Client {
  private cookie = '';
  csrf = '';
  constructor(private readonly base: string) {}

  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(this.base + path, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: this.cookie },
    });
    const set = res.headers.getSetCookie().map((c) => c.split(';')[0]!);
    if (set.length) this.cookie = [...this.cookie.split('; ').filter(Boolean), ...set].join('; ');
    return res;
  }

  async page(path: string): Promise<string> {
    const res = await this.fetch(path);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    const m = /name="_csrf" value="([^"]+)"/.exec(body);
    if (m) this.csrf = m[1]!;
    return body;
  }

  async signIn(user: string): Promise<void> {
    await this.page('/sign-in');
    const res = await this.fetch('/sign-in', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: this.csrf, user, password: PASSWORD }).toString(),
    });
    if (res.status !== 303) throw new Error(`sign-in: ${res.status}`);
    this.cookie = this.cookie
      .split('; ')
      .filter((c) => !c.startsWith('lethe_sign_in='))
      .join('; ');
    await this.page('/requests');
  }
}

async function median(n: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(n / 2)]! * 10) / 10;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      customers: { type: 'string', default: '1000000' },
      requests: { type: 'string', default: '2000' },
      'database-url': { type: 'string' },
    },
    strict: true,
  });
  const customers = Number(values.customers);
  const requests = Number(values.requests);

  const role = `lethe_bench_admin_dpo_${randomBytes(4).toString('hex')}`;
  await withDatabase(
    (server) =>
      withCustomersBench(server, 'lethe_bench_admin', customers, async ({ url, client: c, csvPath: file }) => {
        let child: ChildProcess | undefined;
        try {
          await c.query(`create role ${role} login password '${PASSWORD}' in role pii_admin`);
          // Many small requests (as a support desk makes them), one of them overdue.
          await c.query(
            `select pii.request_erasure(array[i::text], source => 'api') from generate_series(1, ${requests}) i`,
          );
          await c.query(`update pii.requests set due_at = now() - interval '1 hour'
                       where id = (select id from pii.requests order by requested_at limit 1)`);
          await c.query('vacuum analyze bench.customers, pii.requests, pii_internal.request_items');
          const smallId = (await c.query(`select id from pii.requests order by requested_at desc limit 1`)).rows[0].id;

          const port = await freePort();
          child = await startServer(url, port);
          const client = new Client(`http://127.0.0.1:${port}`);
          await client.signIn(role);

          const list1 = await median(15, () => client.page('/requests'));
          const detailSmall = await median(15, () => client.page(`/requests/${smallId}`));
          const before = await peakRssMiB(child.pid!);

          const form = new FormData();
          form.append('_csrf', client.csrf);
          form.append('file', await openAsBlob(file), 'erase.csv');
          let t = performance.now();
          const preview = await client.fetch('/upload', { method: 'POST', body: form });
          const previewBody = await preview.text();
          const uploadSeconds = (performance.now() - t) / 1000;
          const afterUpload = await peakRssMiB(child.pid!);
          const action = /action="(\/upload\/[^"]+\/import)"/.exec(previewBody)?.[1];
          if (!action) throw new Error(`upload preview failed: ${preview.status}`);
          client.csrf = /name="_csrf" value="([^"]+)"/.exec(previewBody)![1]!;
          t = performance.now();
          const imported = await client.fetch(action, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ _csrf: client.csrf }).toString(),
          });
          const importSeconds = (performance.now() - t) / 1000;
          const bigId = imported.headers.get('location')?.split('/').pop();
          if (imported.status !== 303 || !bigId) throw new Error(`import failed: ${imported.status}`);
          const after = await peakRssMiB(child.pid!);

          const list2 = await median(15, () => client.page('/requests'));
          const detailBig = await median(5, () => client.page(`/requests/${bigId}`));
          t = performance.now();
          const evidence = await client.fetch(`/requests/${bigId}/evidence.json`);
          await evidence.text();
          const evidenceMs = Math.round(performance.now() - t);
          const { size } = await import('node:fs/promises').then((f) => f.stat(file));

          console.log(
            `dataset              ${customers.toLocaleString('en-US')} customers, ${requests} small requests`,
          );
          console.log(`GET /requests        ${list1} ms (median of 15)`);
          console.log(`GET /requests/:id    ${detailSmall} ms (1 subject, median of 15)`);
          console.log(
            `upload + check       ${uploadSeconds.toFixed(2)} s for ${(size / 2 ** 20).toFixed(1)} MiB (${customers.toLocaleString('en-US')} rows)`,
          );
          console.log(`import (confirm)     ${importSeconds.toFixed(2)} s to a queued request`);
          console.log(`GET /requests        ${list2} ms after the import (median of 15)`);
          console.log(
            `GET /requests/:id    ${detailBig} ms (the ${customers.toLocaleString('en-US')}-subject request, median of 5)`,
          );
          console.log(`evidence pack        ${evidenceMs} ms (the big request, queued: no live verification)`);
          console.log(
            `server peak RSS      ${before} MiB signed in, ${afterUpload} MiB after the upload and check, ${after} MiB after the import`,
          );
        } finally {
          child?.kill('SIGTERM');
          await c.query(`drop owned by ${role}; drop role if exists ${role}`).catch(() => undefined);
        }
      }),
    { databaseUrl: values['database-url'] },
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
