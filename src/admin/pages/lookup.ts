// "Was this person erased?": the key is POSTed (never in a URL), answered from its keyed
// hash, and never echoed back: the answer page names the request, not the person.
import { type AdminSection, field, HttpError, send, session } from '../context.js';
import { html } from '../html.js';
import { csrfField, notice } from '../layout.js';
import type { Session } from '../sessions.js';
import type { WasErased } from '../../sql/wasErased.js';

function lookupForm(s: Session) {
  return html`<form class="card" method="post" action="/lookup" autocomplete="off">
    ${csrfField(s)}
    <label for="key">Subject key</label>
    <input type="password" id="key" name="key" autocomplete="off" spellcheck="false" />
    <label for="scope">Scope (brand), for installs keyed per brand</label>
    <input type="text" id="scope" name="scope" autocomplete="off" />
    <p class="muted small">Or, instead of the key, a keyed hash from a report:</p>
    <label for="hash">Subject hash</label>
    <input type="text" id="hash" name="hash" autocomplete="off" spellcheck="false" />
    <div class="actions"><button>Look up</button></div>
  </form>`;
}

function answer(r: WasErased) {
  if (!r.erased && !r.flaggedAt) return notice('info', 'No erasure is recorded for this person.');
  return html`${notice(r.erased ? 'ok' : 'info', r.erased ? 'Yes: this person was erased.' : 'An erasure of this person is queued but not finished.')}
    <dl class="facts">
      <dt>Flagged</dt>
      <dd>${r.flaggedAt ?? '–'}</dd>
      <dt>Erased</dt>
      <dd>${r.erasedAt ?? '–'}</dd>
      <dt>Request</dt>
      <dd>${r.requestId ? html`<a href="/requests/${r.requestId}">${r.requestId}</a>` : '–'}</dd>
    </dl>`;
}

export const lookupSection: AdminSection = {
  nav: [{ path: '/lookup', label: 'Was this person erased?' }],
  register(app, ctx) {
    app.get('/lookup', async (req, reply) =>
      send(ctx, req, reply, { title: 'Was this person erased?', current: '/lookup' }, lookupForm(session(req))),
    );
    app.post('/lookup', async (req, reply) => {
      const s = session(req);
      const key = field(req.body, 'key');
      const scope = field(req.body, 'scope');
      const hash = field(req.body, 'hash');
      req.submitted.push(key, scope);
      if (!key && !hash) throw new HttpError(400, 'enter a subject key or a subject hash');
      const result = key ? await s.lethe.wasErased(key, scope || undefined) : await s.lethe.wasErasedHash(hash);
      return send(
        ctx,
        req,
        reply,
        { title: 'Was this person erased?', current: '/lookup' },
        html`${answer(result)}
          <h2>Look up another</h2>
          ${lookupForm(s)}`,
      );
    });
  },
};
