// Legal holds: the list (pii_auditor, pii_admin), placing one for a few keys typed in a
// form, and releasing one (pii_admin). Subjects appear as a count only; the keys typed are
// never shown again, not even on an error.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { legalHolds } from '../../sql/legalHolds.js';
import { placeHold } from '../../sql/placeHold.js';
import { releaseHold } from '../../sql/releaseHold.js';
import { type AdminContext, type AdminSection, field, HttpError, send, session } from '../context.js';
import { html } from '../html.js';
import { csrfField, notice, tableHead } from '../layout.js';
import type { Session } from '../sessions.js';

const MAX_KEYS = 1000;
const HOLD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function placeForm(s: Session) {
  return html`<form class="card" method="post" action="/holds">
    ${csrfField(s)}
    <label for="keys">Subject keys, one per line (at most ${MAX_KEYS})</label>
    <textarea id="keys" name="keys" required autocomplete="off" spellcheck="false"></textarea>
    <label for="reason">Reason (keep names out of it: it is shown to every auditor)</label>
    <input type="text" id="reason" name="reason" required maxlength="500" autocomplete="off" />
    <label for="until">Held until</label>
    <input type="date" id="until" name="until" required />
    <label for="tables">Held tables, comma-separated (schema.table); empty: every registered table</label>
    <input type="text" id="tables" name="tables" autocomplete="off" />
    <div class="actions"><button>Place the hold</button></div>
  </form>`;
}

async function listPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply) {
  const s = session(req);
  const holds = await legalHolds(s.lethe.db);
  const q = req.query as { placed?: string; released?: string };
  return send(
    ctx,
    req,
    reply,
    { title: 'Legal holds', current: '/holds' },
    html`${q.placed !== undefined ? notice('ok', 'The hold was placed.') : ''}
      ${q.released !== undefined ? notice('ok', 'The hold was released.') : ''}
      ${
        holds.length === 0
          ? html`<p class="muted">No legal hold.</p>`
          : html`<table>
              ${tableHead('Hold', 'Status', 'Until', '#Days left', 'Reason', 'Tables', '#Subjects', 'Placed', '')}
              <tbody>
                ${holds.map(
                  (h) =>
                    html`<tr>
                      <td class="hash">${h.holdId.slice(0, 8)}</td>
                      <td><span class="status ${h.status === 'active' ? 'running' : 'done'}">${h.status}</span></td>
                      <td>${h.heldUntil}</td>
                      <td class="num">${h.status === 'active' ? h.daysLeft : ''}</td>
                      <td>${h.reason}</td>
                      <td>${h.tables ? h.tables.join(', ') : html`<span class="muted">all registered</span>`}</td>
                      <td class="num">${h.subjects}</td>
                      <td class="small">${h.placedAt}<br /><span class="muted">${h.placedBy}</span></td>
                      <td>
                        ${
                          h.status === 'active' && s.privileges.admin
                            ? html`<form method="post" action="/holds/${h.holdId}/release">
                                ${csrfField(s)}<button class="secondary">Release</button>
                              </form>`
                            : ''
                        }
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      ${
        s.privileges.admin
          ? html`<h2>Place a hold</h2>
              ${placeForm(s)}`
          : ''
      }
      <p class="muted small">
        Erasing a held subject erases everything else and minimises the held rows (their personal data erased, the row
        and its amounts kept) until the date; then a request erases them too.
      </p>`,
  );
}

export const holdsSection: AdminSection = {
  nav: [{ path: '/holds', label: 'Legal holds', when: (s) => s.privileges.admin || s.privileges.auditor }],
  register(app, ctx) {
    app.get('/holds', (req, reply) => listPage(ctx, req, reply));
    app.post('/holds', async (req, reply) => {
      const s = session(req);
      const keys = field(req.body, 'keys')
        .split(/\r?\n/)
        .map((k) => k.trim())
        .filter((k) => k !== '');
      const reason = field(req.body, 'reason');
      const until = field(req.body, 'until');
      const tables = field(req.body, 'tables')
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '');
      req.submitted.push(...keys);
      if (keys.length === 0) throw new HttpError(400, 'enter at least one subject key');
      if (keys.length > MAX_KEYS) throw new HttpError(400, `at most ${MAX_KEYS} keys per hold`);
      if (!/^\d{4}-\d{2}-\d{2}$/.test(until)) throw new HttpError(400, 'until must be a date (YYYY-MM-DD)');
      await placeHold(s.lethe.db, keys, reason, until, { tables: tables.length > 0 ? tables : undefined });
      return reply.redirect('/holds?placed', 303);
    });
    app.post('/holds/:id/release', async (req, reply) => {
      const id = (req.params as { id: string }).id.toLowerCase();
      if (!HOLD_ID.test(id)) throw new HttpError(404, 'no such legal hold');
      await releaseHold(session(req).lethe.db, id);
      return reply.redirect('/holds?released', 303);
    });
  },
};
