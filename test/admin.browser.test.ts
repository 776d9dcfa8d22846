// The admin pages in a real browser (headless Chromium from @sparticuz/chromium, driven
// by puppeteer-core), JavaScript disabled throughout: every flow is plain HTML forms.
// An operator signs in, uploads a CSV with a bad row (rejected, row named, nothing
// queued) and a good one, follows it to done under a real worker, re-verifies, downloads
// the evidence pack and checks its hash, looks a person up and erases two by key; an
// auditor reads but is refused (403) when submitting; pii_admin places and releases a
// legal hold and previews and approves a retention policy. Every response body of the run is
// searched for the subjects' keys and emails. Screenshots: test-output/admin/*.png.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import chromium from '@sparticuz/chromium';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LetheWorker, runWorker } from '../src/api/index.js';
import { type AdminFixture, createAdminFixture, memberHandles, PASSWORD } from './helpers/admin.js';

const LAMBDA_ONLY_FLAGS = ['--single-process', '--disable-web-security', '--allow-running-insecure-content'];
const OUT = join(process.cwd(), 'test-output', 'admin');
let fx: AdminFixture;
let base: string;
let browser: Browser;
let worker: LetheWorker;
const bodies: Array<{ url: string; body: string }> = [];

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(join(OUT, 'downloads'), { recursive: true });
  fx = await createAdminFixture('admin_browser');
  base = await fx.server.app.listen({ host: '127.0.0.1', port: 0 });
  worker = await runWorker({ connectionString: fx.db.url, pollInterval: 100, log: () => {} });
  browser = await puppeteer.launch({
    // @sparticuz/chromium's flags are made for AWS Lambda: one process (which cannot open a
    // second browser context) and web security off. A test of cookies and forms wants neither.
    args: chromium.args.filter((a) => !LAMBDA_ONLY_FLAGS.includes(a)),
    executablePath: await chromium.executablePath(),
    headless: true,
    defaultViewport: { width: 1280, height: 860 },
  });
});

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await fx?.close();
});

/** A fresh browser profile (own cookies) with JavaScript off, recording every response body. */
async function newPage(): Promise<Page> {
  const context = await browser.createBrowserContext({
    downloadBehavior: { policy: 'allow', downloadPath: join(OUT, 'downloads') },
  });
  const page = await context.newPage();
  await page.setJavaScriptEnabled(false);
  page.on('response', (res) => {
    if (res.status() >= 300 && res.status() < 400) {
      bodies.push({ url: res.url(), body: JSON.stringify(res.headers()) });
      return;
    }
    res.text().then(
      (body) => bodies.push({ url: res.url(), body: body + JSON.stringify(res.headers()) }),
      () => undefined,
    );
  });
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

async function submit(page: Page, selector = 'main form button'): Promise<void> {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

async function signIn(page: Page, role: string): Promise<void> {
  await page.goto(`${base}/requests`);
  expect(new URL(page.url()).pathname).toBe('/sign-in');
  await page.type('#user', role);
  await page.type('#password', PASSWORD);
  await submit(page);
  expect(new URL(page.url()).pathname).toBe('/requests');
}

async function text(page: Page): Promise<string> {
  return page.$eval('main', (m) => (m as HTMLElement).innerText);
}

async function requestCount(): Promise<number> {
  return Number((await fx.db.query(`select count(*) as n from pii.requests`)).rows[0].n);
}

async function download(page: Page, href: string): Promise<string> {
  const name = href
    .split('/')
    .pop()!
    .replace('evidence', 'lethe-evidence-' + href.split('/')[2]);
  await page.click(`a[href="${href}"]`);
  const path = join(OUT, 'downloads', name);
  for (let i = 0; i < 100; i++) {
    if ((await readdir(join(OUT, 'downloads'))).includes(name)) return readFile(path, 'utf8');
    await sleep(100);
  }
  throw new Error(`no download of ${href}`);
}

describe('lethe admin in a browser, JavaScript disabled', () => {
  let requestId: string;

  it('an operator signs in, has a bad CSV rejected by row number, imports a good one and follows it to done', async () => {
    const page = await newPage();
    await page.goto(`${base}/sign-in`);
    await shot(page, '01-sign-in');
    await signIn(page, fx.roles.operator);
    await shot(page, '02-requests-empty');

    const handles = await memberHandles(fx.db, 1, 30);
    const csvDir = join(OUT, 'csv');
    await mkdir(csvDir, { recursive: true });
    const bad = join(csvDir, 'bad.csv');
    await writeFile(bad, `subject_key\n${handles[0]}\n${handles[1]}\n${handles[2]},${handles[3]}\n${handles[4]}\n`);
    await page.goto(`${base}/upload`);
    await shot(page, '03-upload');
    await ((await page.$('#file')) as ElementHandle<HTMLInputElement>).uploadFile(bad);
    await submit(page);
    const rejected = await text(page);
    expect(rejected).toContain('Nothing was queued');
    expect(rejected).toMatch(/\b4\s+invalid expected 1 column, found 2/);
    await shot(page, '04-upload-rejected');
    expect(await requestCount()).toBe(0);
    expect(await readdir(fx.server.uploadDir)).toEqual([]);

    const good = join(csvDir, 'good.csv');
    await writeFile(good, `customer_id\n${handles.join('\n')}\nmbr-nobody-by-this-handle\n`);
    await ((await page.$('#file')) as ElementHandle<HTMLInputElement>).uploadFile(good);
    await page.type('#request_key', 'dpo-ticket-4711');
    await submit(page);
    const preview = await text(page);
    expect(preview).toContain('The header and the first 20 row(s) are valid');
    expect(preview).toMatch(/\b21\s+valid/);
    await shot(page, '05-upload-preview');
    expect(await requestCount()).toBe(0);

    await submit(page, 'form[action$="/import"] button');
    requestId = new URL(page.url()).pathname.split('/')[2]!;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await readdir(fx.server.uploadDir)).toEqual([]);
    for (let i = 0; i < 300; i++) {
      const { rows } = await fx.db.query(`select status from pii.requests where id = $1`, [requestId]);
      if (rows[0].status === 'done' || rows[0].status === 'failed') break;
      await sleep(100);
    }
    await page.goto(`${base}/requests/${requestId}`);
    const detail = await text(page);
    expect(detail).toMatch(/Status\s+done/);
    expect(detail).toContain('31 (30 matched, 1 unmatched, 0 duplicate rows)');
    expect(detail).toMatch(/acct\.logins\s+18/);
    expect(detail).toContain('Unmatched subjects');
    expect(detail).toContain('Your role is not a pii_auditor');
    await shot(page, '06-request-detail');

    await submit(page, 'form[action$="/verify"] button');
    expect(await text(page)).toContain('Verified: nothing of these subjects is left');
    await shot(page, '07-reverified');

    const json = JSON.parse(await download(page, `/requests/${requestId}/evidence.json`));
    expect(createHash('sha256').update(JSON.stringify(json.pack)).digest('hex')).toBe(json.sha256);
    expect(json.pack.request).toMatchObject({ id: requestId, status: 'done', requestedBy: fx.roles.operator });
    expect(json.pack.counts).toMatchObject({ subjects: 31, matched: 30, unmatched: 1 });
    expect(json.pack.verification.verified).toBe(true);
    const csv = await download(page, `/requests/${requestId}/evidence.csv`);
    const lines = csv.trimEnd().split('\n');
    const last = lines.pop()!.split(',');
    expect(
      createHash('sha256')
        .update(`${lines.join('\n')}\n`)
        .digest('hex'),
    ).toBe(last[2]);
    bodies.push({ url: 'evidence.json', body: JSON.stringify(json) }, { url: 'evidence.csv', body: csv });

    await page.goto(`${base}/requests`);
    expect(await text(page)).toContain(requestId.slice(0, 8));
    await shot(page, '08-requests');
  });

  it('an operator asks "was this person erased?" and erases two people typed in a form', async () => {
    const page = await newPage();
    await signIn(page, fx.roles.operator);
    const [first, , , , , , , , , , , , , , , , , , , , , , , , , , , , , , late1, late2] = await memberHandles(
      fx.db,
      1,
      32,
    );
    await page.goto(`${base}/lookup`);
    await page.type('#key', first!);
    await submit(page);
    expect(await text(page)).toContain('Yes: this person was erased.');
    expect(await page.$eval('#key', (i) => (i as HTMLInputElement).value)).toBe('');
    await shot(page, '09-lookup');

    await page.goto(`${base}/erase`);
    await page.type('#keys', `${late1}\n${late2}\n`);
    await shot(page, '10-erase');
    await submit(page);
    expect(new URL(page.url()).pathname).toMatch(/^\/requests\/[0-9a-f-]{36}$/);
    expect(await text(page)).toContain('2 (2 matched');

    await page.goto(`${base}/audit`);
    expect(await text(page)).toContain('Your database role may not do this');
  });

  it('an auditor reads requests and the audit, and is refused (403, nothing queued) when submitting', async () => {
    const page = await newPage();
    await signIn(page, fx.roles.auditor);
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.textContent));
    expect(nav).not.toContain('Upload CSV');
    expect(nav).not.toContain('Erase keys');
    await page.goto(`${base}/audit?action=request_erasure`);
    const actions = await page.$$eval('tbody tr td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
    expect(actions.length).toBeGreaterThan(0);
    expect(new Set(actions)).toEqual(new Set(['request_erasure']));
    await shot(page, '11-audit');
    await page.goto(`${base}/requests/${requestId}`);
    expect(await text(page)).toMatch(/Audit\s+When/);

    const before = await requestCount();
    const [key] = await memberHandles(fx.db, 33, 33);
    await page.goto(`${base}/erase`);
    await page.type('#keys', key!);
    const [res] = await Promise.all([page.waitForNavigation(), page.click('main form button')]);
    expect(res!.status()).toBe(403);
    expect(await text(page)).toContain('Your database role may not do this');
    await shot(page, '12-auditor-403');
    expect(await requestCount()).toBe(before);

    await page.goto(`${base}/upload`);
    await ((await page.$('#file')) as ElementHandle<HTMLInputElement>).uploadFile(join(OUT, 'csv', 'good.csv'));
    const [up] = await Promise.all([page.waitForNavigation(), page.click('main form button')]);
    expect(up!.status()).toBe(403);
    expect(await requestCount()).toBe(before);

    await submit(page, 'form.signout button');
    expect(new URL(page.url()).pathname).toBe('/sign-in');
  });

  it('pii_admin places a legal hold, previews and approves a retention policy, and releases the hold', async () => {
    await fx.db.query(
      `grant usage on schema acct to ${fx.roles.admin}; grant select on acct.members to ${fx.roles.admin}`,
    );
    await fx.db.query(`select pii.set_retention_policy('inactive-members', $1, 10)`, [
      `select m.handle from acct.members m where m.display_name in ('Member 38', 'Member 39', 'Member 40')`,
    ]);
    const page = await newPage();
    await signIn(page, fx.roles.admin);
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.textContent));
    expect(nav).toEqual(expect.arrayContaining(['Retention', 'Legal holds']));

    const [held] = await memberHandles(fx.db, 39, 39);
    await page.goto(`${base}/holds`);
    await page.type('#keys', held!);
    await page.type('#reason', 'chargeback dispute');
    // A date input takes the digits in the browser's locale order (en-US: month, day, year).
    await page.type('#until', '12312099');
    await page.type('#tables', 'acct.logins');
    await submit(page);
    expect(new URL(page.url()).pathname).toBe('/holds');
    expect(await text(page)).toMatch(
      /The hold was placed\.[\s\S]*active\s+2099-12-31[\s\S]*chargeback dispute\s+acct\.logins\s+1/,
    );
    expect(await page.$eval('#keys', (t) => (t as HTMLTextAreaElement).value)).toBe('');
    await shot(page, '13-holds');

    await page.goto(`${base}/retention`);
    expect(await text(page)).toMatch(/inactive-members\s+1\s+not approved/);
    await shot(page, '14-retention');
    await page.click('a[href="/retention/inactive-members"]');
    await page.waitForSelector('form[action$="/preview"]');
    await submit(page, 'form[action$="/preview"] button');
    const preview = await text(page);
    expect(preview).toContain('2 subject(s) would be erased now (limit 10).');
    expect(preview).toMatch(/Held \(left out\)\s+1/);
    expect(await page.$$eval('ul.hash li', (lis) => lis.length)).toBe(2);
    await shot(page, '15-retention-preview');
    await submit(page, 'form[action$="/approve"] button');
    expect(await text(page)).toMatch(/Version 1 approved\.[\s\S]*approved by/);
    expect(
      (await fx.db.query(`select approved_by from pii.retention_policies where policy_name = 'inactive-members'`)).rows,
    ).toEqual([{ approved_by: fx.roles.admin }]);
    await shot(page, '16-retention-approved');

    await page.goto(`${base}/holds`);
    await submit(page, 'form[action$="/release"] button');
    expect(await text(page)).toMatch(/The hold was released\.[\s\S]*released\s+2099-12-31/);
    expect((await fx.db.query(`select status from pii.holds`)).rows).toEqual([{ status: 'released' }]);
  });

  it('no response of the whole run contains a subject key or an email', async () => {
    await sleep(200); // the last response bodies are read asynchronously
    expect(bodies.length).toBeGreaterThan(20);
    const leaks = fx.identifiers
      .concat(['mbr-nobody-by-this-handle', 'dpo-ticket-4711'])
      .flatMap((id) => bodies.filter((b) => b.body.includes(id)).map((b) => `${id} in ${b.url}`));
    expect(leaks).toEqual([]);
  });
});
