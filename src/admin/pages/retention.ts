// Retention policies: the list, one policy with its recent runs, a preview (what enforcing
// it would do now: counts, held subjects, rows per table, 20 keyed hashes) and approval of
// the current version. Everything runs under the signed-in role: pii_operator previews,
// pii_admin approves, and the database refuses the others (403).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { approveRetention } from '../../sql/approveRetention.js';
import { previewRetention, type RetentionPreview } from '../../sql/previewRetention.js';
import { retentionHistory } from '../../sql/retentionHistory.js';
import { type RetentionPolicy, retentionPolicies } from '../../sql/retentionPolicies.js';
import { type AdminContext, type AdminSection, field, HttpError, send, session } from '../context.js';
import { type Html, html } from '../html.js';
import { csrfField, notice, tableHead } from '../layout.js';

const POLICY_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

function policyParam(req: FastifyRequest): string {
  const name = (req.params as { name?: string }).name ?? '';
  if (!POLICY_NAME.test(name)) throw new HttpError(404, 'no such retention policy');
  return name;
}

function approval(p: RetentionPolicy): Html {
  return p.approved ? html`approved by ${p.approvedBy}` : html`<span class="overdue">not approved</span>`;
}

async function listPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply) {
  const policies = await retentionPolicies(session(req).lethe.db);
  return send(
    ctx,
    req,
    reply,
    { title: 'Retention policies', current: '/retention' },
    html`${
        policies.length === 0
          ? html`<p class="muted">No retention policy yet: define one with <code>lethe retention set</code>.</p>`
          : html`<table>
              ${tableHead('Policy', '#Version', 'Approval', 'Schedule', '#Limit', 'Mode', 'Last run', 'Outcome')}
              <tbody>
                ${policies.map(
                  (p) =>
                    html`<tr>
                      <td><a href="/retention/${p.policyName}">${p.policyName}</a></td>
                      <td class="num">${p.version}</td>
                      <td>${approval(p)}</td>
                      <td>${p.schedule}${p.enabled ? '' : html` <span class="muted small">(off)</span>`}</td>
                      <td class="num">${p.maxSubjects}</td>
                      <td>${p.mode}</td>
                      <td class="small when">${p.lastRunAt ?? '–'}</td>
                      <td>${p.lastOutcome ?? ''}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <p class="muted small">
        A version runs only once a pii_admin approved it, after a preview showed what it would erase.
      </p>`,
  );
}

function previewSection(p: RetentionPreview): Html {
  const tables = Object.entries(p.rowsToChange).sort(([a], [b]) => a.localeCompare(b));
  return html`<h2>Preview of version ${p.version}</h2>
    ${
      p.withinLimit
        ? notice('ok', `${p.candidates} subject(s) would be erased now (limit ${p.maxSubjects}).`)
        : notice(
            'error',
            `${p.candidates} subject(s) selected, more than the limit of ${p.maxSubjects}: enforcement would be blocked and erase nobody.`,
          )
    }
    <dl class="facts">
      <dt>Candidates</dt>
      <dd>${p.candidates}</dd>
      <dt>Held (left out)</dt>
      <dd>${p.held}</dd>
      <dt>Limit</dt>
      <dd>${p.maxSubjects}</dd>
    </dl>
    <h3>Rows that would change</h3>
    <table class="narrow">
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
    </table>
    <h3>Sample of subjects (keyed hashes)</h3>
    ${
      p.sample.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<ul class="hash">
            ${p.sample.map((h) => html`<li>${h}</li>`)}
          </ul>`
    }`;
}

async function policyPage(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  extra?: { preview?: RetentionPreview; approved?: number },
) {
  const s = session(req);
  const name = policyParam(req);
  const [policies, runs] = await Promise.all([retentionPolicies(s.lethe.db), retentionHistory(s.lethe.db, name, 20)]);
  const p = policies.find((x) => x.policyName === name);
  if (!p) throw new HttpError(404, 'no such retention policy');
  return send(
    ctx,
    req,
    reply,
    { title: `Retention policy ${name}`, current: '/retention' },
    html`${extra?.approved ? notice('ok', `Version ${extra.approved} approved.`) : ''}
      <dl class="facts">
        <dt>Version</dt>
        <dd>${p.version}, defined by ${p.definedBy}</dd>
        <dt>Approval</dt>
        <dd>${approval(p)}</dd>
        <dt>Query</dt>
        <dd><code>${p.subjectQuery}</code></dd>
        <dt>Limit</dt>
        <dd>${p.maxSubjects} subjects per run</dd>
        <dt>Mode</dt>
        <dd>${p.mode}</dd>
        <dt>Schedule</dt>
        <dd>${p.schedule}${p.enabled ? ' (on the worker’s schedule)' : ' (off: runs only when asked)'}</dd>
      </dl>
      <div class="actions">
        ${
          s.privileges.operator
            ? html`<form method="post" action="/retention/${name}/preview">
                ${csrfField(s)}<button class="secondary">Preview</button>
              </form>`
            : ''
        }
        ${
          s.privileges.admin && !p.approved
            ? html`<form method="post" action="/retention/${name}/approve">
                ${csrfField(s)}<input type="hidden" name="version" value="${p.version}" />
                <button>Approve version ${p.version}</button>
              </form>`
            : ''
        }
      </div>
      ${extra?.preview ? previewSection(extra.preview) : ''}
      <h2>Recent runs</h2>
      ${
        runs.length === 0
          ? html`<p class="muted">No run yet.</p>`
          : html`<table>
              ${tableHead('When', '#Version', 'Outcome', '#Candidates', '#Held', 'Request', 'Run by')}
              <tbody>
                ${runs.map(
                  (r) =>
                    html`<tr>
                      <td class="small when">${r.at}</td>
                      <td class="num">${r.version}</td>
                      <td>${r.outcome}</td>
                      <td class="num">${r.candidates ?? ''}</td>
                      <td class="num">${r.held ?? ''}</td>
                      <td>
                        ${r.requestId ? html`<a class="hash" href="/requests/${r.requestId}">${r.requestId.slice(0, 8)}</a>` : ''}
                      </td>
                      <td>${r.runBy}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <p><a href="/retention">All policies</a></p>`,
  );
}

export const retentionSection: AdminSection = {
  nav: [{ path: '/retention', label: 'Retention' }],
  register(app, ctx) {
    app.get('/retention', (req, reply) => listPage(ctx, req, reply));
    app.get('/retention/:name', (req, reply) => {
      const approved = Number.parseInt((req.query as { approved?: string }).approved ?? '', 10);
      return policyPage(ctx, req, reply, { approved: approved > 0 ? approved : undefined });
    });
    // A preview writes an audit row: a POST, like every action.
    app.post('/retention/:name/preview', async (req, reply) => {
      const preview = await previewRetention(session(req).lethe.db, policyParam(req));
      return policyPage(ctx, req, reply, { preview });
    });
    app.post('/retention/:name/approve', async (req, reply) => {
      const name = policyParam(req);
      const version = Number(field(req.body, 'version'));
      if (!Number.isInteger(version) || version < 1) throw new HttpError(400, 'version must be a positive integer');
      await approveRetention(session(req).lethe.db, name, version);
      return reply.redirect(`/retention/${name}?approved=${version}`, 303);
    });
  },
};
