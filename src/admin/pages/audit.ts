// The audit trail (pii.audit, readable by pii_auditor): filter by action and by date.
import { type AdminSection, HttpError, send, session } from '../context.js';
import { html } from '../html.js';
import { auditTable } from './requests.js';

const LIMIT = 200;
/** The actions Lethe's functions write (pii.write_audit calls in db/), for the filter. */
const ACTIONS = [
  'request_erasure',
  'erase_chunk',
  'request_finished',
  'request_failed',
  'retry_request',
  'erase_subjects',
  'allow_return',
  'set_guard',
  'grant_role',
  'revoke_role',
  'register_subject_table',
  'register_table',
  'register_child_table',
  'register_column',
  'unregister_subject_table',
  'unregister_table',
  'unregister_column',
  'unregister_dropped_tables',
  'apply_masking',
];

function day(value: string | undefined, name: string, endOfDay: boolean): Date | undefined {
  if (!value) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new HttpError(400, `${name} must be a date (YYYY-MM-DD)`);
  const d = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) throw new HttpError(400, `${name} is not a valid date`);
  return endOfDay ? new Date(d.getTime() + 86_400_000) : d;
}

export const auditSection: AdminSection = {
  nav: [{ path: '/audit', label: 'Audit', when: (s) => s.privileges.auditor }],
  register(app, ctx) {
    app.get('/audit', async (req, reply) => {
      const s = session(req);
      const q = req.query as { action?: string; from?: string; to?: string };
      const action = q.action?.trim() || undefined;
      if (action && !/^[a-z_]{1,64}$/.test(action))
        throw new HttpError(400, 'an action is a name such as request_erasure');
      const rows = await s.lethe.audit.rows({
        action,
        since: day(q.from, 'from', false),
        until: day(q.to, 'to', true),
        limit: LIMIT,
      });
      return send(
        ctx,
        req,
        reply,
        { title: 'Audit trail', current: '/audit' },
        html`<form class="card filters" method="get" action="/audit">
            <div>
              <label for="action">Action</label>
              <select id="action" name="action">
                <option value="">any</option>
                ${ACTIONS.map((a) => html`<option${a === action ? html` selected` : ''}>${a}</option>`)}
              </select>
            </div>
            <div><label for="from">From</label><input type="date" id="from" name="from" value="${q.from ?? ''}" /></div>
            <div>
              <label for="to">To (inclusive)</label><input type="date" id="to" name="to" value="${q.to ?? ''}" />
            </div>
            <div><button>Filter</button></div>
          </form>
          ${auditTable(rows)}
          <p class="muted small">Newest first, at most ${LIMIT} rows. Subjects appear as keyed hashes only.</p>`,
      );
    });
  },
};
