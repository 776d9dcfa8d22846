// Requests: the list (overdue first), one request in detail, re-verify and retry, and
// the evidence pack. Subjects appear only as keyed hashes and CSV row numbers.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Residual } from '../../sql/verifyErasure.js';
import { listRequests, type RequestSummary } from '../../sql/listRequests.js';
import type { RequestItem } from '../../sql/requestItems.js';
import { requestItemsPage } from '../../sql/requestItemsPage.js';
import type { RequestStatus } from '../../sql/requestStatus.js';
import { isFinished } from '../../sql/requestStatus.js';
import { type AdminContext, type AdminSection, HttpError, requestIdParam, send, session } from '../context.js';
import { buildEvidencePack, evidenceCsv, evidenceJson } from '../evidence.js';
import { formatTime, type Html, html } from '../html.js';
import { csrfField, notice, progressBar, tableHead } from '../layout.js';
import type { Session } from '../sessions.js';

const PAGE_SIZE = 50;
const ITEM_FILTERS = ['unmatched', 'failed'] as const;
type ItemFilter = (typeof ITEM_FILTERS)[number];

/** One keyset page of items, and the hash to continue after when there are more. */
async function itemsPage(
  s: Session,
  id: string,
  only: ItemFilter | undefined,
  afterHash?: string,
): Promise<{ items: RequestItem[]; next: string | undefined }> {
  const rows = await requestItemsPage(s.lethe.db, id, { only, afterHash, pageSize: PAGE_SIZE + 1 });
  const items = rows.slice(0, PAGE_SIZE);
  return { items, next: rows.length > PAGE_SIZE ? items.at(-1)!.subjectHash : undefined };
}

function itemsUrl(id: string, only: ItemFilter | undefined, after?: string): string {
  const q = [only && `only=${only}`, after && `after=${after}`].filter(Boolean).join('&');
  return `/requests/${id}/items${q ? `?${q}` : ''}`;
}
const STATUSES = ['queued', 'running', 'done', 'failed'] as const;

function statusBadge(status: string): Html {
  return html`<span class="status ${status}">${status}</span>`;
}

function requestsTable(rows: RequestSummary[]): Html {
  if (rows.length === 0) return html`<p class="muted">No requests.</p>`;
  return html`<table>
    ${tableHead('Request', 'Status', 'Progress', 'Due', 'Source', '#Subjects', '#Matched', '#Erased', '#Failed', 'Requested')}
    <tbody>
      ${rows.map(
        (r) => html`<tr>
<td><a class="hash" href="/requests/${r.id}">${r.id.slice(0, 8)}</a></td>
<td>${statusBadge(r.status)}${r.status === 'done' && r.residualCount === 0 ? html` <span class="small muted">verified</span>` : ''}</td>
<td>${progressBar(r.total === 0 ? 1 : (r.processed + r.failed) / r.total)}</td>
<td${r.overdue ? html` class="overdue"` : ''}>${r.dueAt}${r.overdue ? ' (overdue)' : ''}</td>
<td>${r.source}</td>
<td class="num">${r.total}</td><td class="num">${r.matched}</td><td class="num">${r.erased}</td><td class="num">${r.failed}</td>
<td class="small">${r.requestedAt}<br><span class="muted">${r.requestedBy}</span></td>
</tr>`,
      )}
    </tbody>
  </table>`;
}

async function listPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply) {
  const s = session(req);
  const q = req.query as { status?: string; page?: string };
  const status = STATUSES.find((x) => x === q.status);
  const pageNo = Math.max(1, Math.min(10_000, Number.parseInt(q.page ?? '1', 10) || 1));
  const rows = await listRequests(s.lethe.db, { status, limit: PAGE_SIZE + 1, offset: (pageNo - 1) * PAGE_SIZE });
  const link = (p: number) => `/requests?${status ? `status=${status}&` : ''}page=${p}`;
  return send(
    ctx,
    req,
    reply,
    { title: 'Erasure requests', current: '/requests' },
    html`<p class="filters">
        Show:
        <a href="/requests" ${status ? '' : html` aria-current="page"`}>all</a>
        ${STATUSES.map((x) => html` · <a href="/requests?status=${x}" ${status === x ? html` aria-current="page"` : ''}>${x}</a>`)}
      </p>
      ${requestsTable(rows.slice(0, PAGE_SIZE))}
      <p class="pager">
        ${pageNo > 1 ? html`<a href="${link(pageNo - 1)}">← newer</a>` : ''}${rows.length > PAGE_SIZE ? html`<a href="${link(pageNo + 1)}">older →</a>` : ''}
      </p>
      <p class="muted small">Open requests past their due date come first, then the most recent.</p>`,
  );
}

function residualTable(residuals: Residual[]): Html {
  if (residuals.length === 0)
    return notice('ok', 'Verified: nothing of these subjects is left in any registered table.');
  const byTable = new Map<string, Residual[]>();
  for (const r of residuals) byTable.set(r.tableName, [...(byTable.get(r.tableName) ?? []), r]);
  return html`${notice('error', `${residuals.length} trace(s) left in ${byTable.size} table(s).`)}
  ${[...byTable].map(
    ([table, rs]) =>
      html`<h3>${table} <span class="muted small">(${rs.length})</span></h3>
        <table>
          ${tableHead('Column', 'Subject (keyed hash)', 'What is left')}
          <tbody>
            ${rs.map(
              (r) =>
                html`<tr>
                  <td>${r.columnName ?? '(row)'}</td>
                  <td class="hash">${r.subjectHash}</td>
                  <td>${r.detail}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
  )}`;
}

function facts(st: RequestStatus, requestedBy: string): Html {
  const overdue = !isFinished(st.status) && st.dueAt.getTime() < Date.now();
  return html`<dl class="facts">
<dt>Status</dt><dd>${statusBadge(st.status)} ${progressBar(st.progress)}</dd>
<dt>Mode</dt><dd>${st.mode}</dd>
<dt>Source</dt><dd>${st.source}</dd>
<dt>Requested</dt><dd>${st.requestedAt} by ${requestedBy}</dd>
<dt>Due</dt><dd${overdue ? html` class="overdue"` : ''}>${st.dueAt}${overdue ? ' (overdue)' : ''}</dd>
<dt>Started</dt><dd>${st.startedAt ?? '–'}</dd>
<dt>Finished</dt><dd>${st.finishedAt ?? '–'}</dd>
<dt>Subjects</dt><dd>${st.total} (${st.matched} matched, ${st.unmatched} unmatched, ${st.duplicates} duplicate rows)</dd>
<dt>Erased / failed</dt><dd>${st.erased} / ${st.failed}</dd>
<dt>Verification</dt><dd>${
    st.verifiedAt
      ? html`${st.residualCount === 0 ? 'nothing left' : `${st.residualCount} trace(s) left`}
          <span class="muted">(checked ${st.verifiedAt})</span>`
      : 'not yet verified'
  }</dd>
${
  st.error
    ? html`<dt>Error</dt>
        <dd>${st.error}</dd>`
    : ''
}
</dl>`;
}

async function detailPage(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  verification?: { residuals: Residual[]; at: Date },
) {
  const s = session(req);
  const id = requestIdParam(req);
  const [st, [summary]] = await Promise.all([s.lethe.getRequest(id), listRequests(s.lethe.db, { id, limit: 1 })]);
  // The first page of each (one index range each, however many items the request has).
  const none = { items: [], next: undefined };
  const [unmatched, failed] = await Promise.all([
    st.unmatched > 0 ? itemsPage(s, id, 'unmatched') : none,
    st.failed > 0 ? itemsPage(s, id, 'failed') : none,
  ]);
  const audit = s.privileges.auditor ? await s.lethe.audit.rows({ requestId: id, limit: 100 }) : undefined;
  const tables = Object.entries(st.rowsAffected).sort(([a], [b]) => a.localeCompare(b));
  const body = html`${facts(st, summary?.requestedBy ?? '?')}
    <div class="actions">
      <form method="post" action="/requests/${id}/verify">
        ${csrfField(s)}<button class="secondary">Re-verify now</button>
      </form>
      ${st.status === 'failed' && s.privileges.operator ? html`<form method="post" action="/requests/${id}/retry">${csrfField(s)}<button>Retry failed items</button></form>` : ''}
      <a href="/requests/${id}/evidence.json">Evidence pack (JSON)</a>
      <a href="/requests/${id}/evidence.csv">Evidence pack (CSV)</a>
    </div>
    ${
      verification
        ? html`<h2>Verification, ${formatTime(verification.at)}</h2>
            ${residualTable(verification.residuals)}`
        : ''
    }
    <h2>Rows changed per table</h2>
    ${
      tables.length === 0
        ? html`<p class="muted">Nothing changed yet.</p>`
        : html`<table class="narrow">
            ${tableHead('Table', '#Rows')}
            <tbody>
              ${tables.map(
                ([t, n]) =>
                  html`<tr>
                    <td>${t}</td>
                    <td class="num">${n}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${itemsSection('Unmatched subjects', id, 'unmatched', unmatched, st.unmatched)}
    ${itemsSection('Failed subjects', id, 'failed', failed, st.failed)}
    <p><a href="${itemsUrl(id, undefined)}">All ${st.total} subjects, page by page</a></p>
    <h2>Audit</h2>
    ${
      audit === undefined
        ? html`<p class="muted">Your role is not a pii_auditor: the audit trail is not shown.</p>`
        : auditTable(audit)
    }`;
  return send(
    ctx,
    req,
    reply,
    { title: `Request ${id}`, refresh: isFinished(st.status) ? undefined : { seconds: 3, url: `/requests/${id}` } },
    body,
  );
}

function itemsSection(
  title: string,
  id: string,
  only: ItemFilter,
  page: { items: RequestItem[]; next: string | undefined },
  total: number,
): Html {
  if (page.items.length === 0) return html``;
  return html`<h2>
      ${title} <span class="muted small">(${page.next ? `first ${page.items.length} of ` : ''}${total})</span>
    </h2>
    ${itemsTable(page.items)}
    ${page.next ? html`<p class="pager"><a href="${itemsUrl(id, only, page.next)}">more →</a></p>` : ''}`;
}

function itemsTable(items: RequestItem[]): Html {
  if (items.length === 0) return html`<p class="muted">No subjects.</p>`;
  return html`<table>
    ${tableHead('#CSV row', 'Subject (keyed hash)', 'Status', 'Error')}
    <tbody>
      ${items.map(
        (i) =>
          html`<tr>
            <td class="num">${i.sourceRow ?? '–'}</td>
            <td class="hash">${i.subjectHash}</td>
            <td>${i.status}${i.matched ? '' : ' (unmatched)'}</td>
            <td>${i.error ?? ''}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** All of a request's subjects, or its unmatched or failed ones, one keyset page at a time. */
async function itemsListPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply) {
  const s = session(req);
  const id = requestIdParam(req);
  const q = req.query as { only?: string; after?: string };
  const only = ITEM_FILTERS.find((x) => x === q.only);
  if (q.after !== undefined && !/^[0-9a-f]{64}$/.test(q.after))
    throw new HttpError(400, 'after must be a subject hash');
  const page = await itemsPage(s, id, only, q.after);
  return send(
    ctx,
    req,
    reply,
    { title: `Subjects of request ${id.slice(0, 8)}` },
    html`<p class="filters">
        Show:
        <a href="${itemsUrl(id, undefined)}" ${only ? '' : html` aria-current="page"`}>all</a>
        ${ITEM_FILTERS.map((x) => html` · <a href="${itemsUrl(id, x)}" ${only === x ? html` aria-current="page"` : ''}>${x}</a>`)}
      </p>
      ${itemsTable(page.items)}
      <p class="pager">
        ${q.after ? html`<a href="${itemsUrl(id, only)}">← first page</a>` : ''}${page.next ? html`<a href="${itemsUrl(id, only, page.next)}">next →</a>` : ''}
      </p>
      <p><a href="/requests/${id}">Back to the request</a></p>
      <p class="muted small">In keyed-hash order, ${PAGE_SIZE} a page.</p>`,
  );
}

export function auditTable(rows: Awaited<ReturnType<Session['lethe']['audit']['rows']>>): Html {
  if (rows.length === 0) return html`<p class="muted">No audit rows.</p>`;
  return html`<table>
    ${tableHead('When', 'Who', 'Action', 'Request', 'Subject (keyed hash)', 'Details')}
    <tbody>
      ${rows.map(
        (r) =>
          html`<tr>
            <td class="small when">${r.at}</td>
            <td>${r.actor}<br /><span class="muted small">${r.application}</span></td>
            <td>${r.action}</td>
            <td>
              ${r.requestId ? html`<a class="hash" href="/requests/${r.requestId}">${r.requestId.slice(0, 8)}</a>` : ''}
            </td>
            <td class="hash">${r.subjectHash ? r.subjectHash.slice(0, 16) : ''}</td>
            <td class="small"><code>${Object.keys(r.details).length ? JSON.stringify(r.details) : ''}</code></td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export const requestsSection: AdminSection = {
  nav: [{ path: '/requests', label: 'Requests' }],
  register(app, ctx) {
    app.get('/requests', (req, reply) => listPage(ctx, req, reply));
    app.get('/requests/:id', (req, reply) => detailPage(ctx, req, reply));
    app.get('/requests/:id/items', (req, reply) => itemsListPage(ctx, req, reply));
    app.post('/requests/:id/verify', async (req, reply) => {
      const s = session(req);
      const at = new Date();
      const { residuals } = await s.lethe.verifyRequest(requestIdParam(req));
      return detailPage(ctx, req, reply, { residuals, at });
    });
    app.post('/requests/:id/retry', async (req, reply) => {
      const id = requestIdParam(req);
      await session(req).lethe.retryRequest(id);
      return reply.redirect(`/requests/${id}`, 303);
    });
    app.get('/requests/:id/evidence.:format', async (req, reply) => {
      const s = session(req);
      const format = (req.params as { format: string }).format;
      if (format !== 'json' && format !== 'csv') throw new HttpError(404, 'evidence packs are .json or .csv');
      const id = requestIdParam(req);
      const pack = await buildEvidencePack(s.lethe, id, s.privileges.role);
      return reply
        .header('content-disposition', `attachment; filename="lethe-evidence-${id}.${format}"`)
        .type(format === 'json' ? 'application/json; charset=utf-8' : 'text/csv; charset=utf-8')
        .send(format === 'json' ? evidenceJson(pack) : evidenceCsv(pack));
    });
  },
};
