// Erase a few keys typed in a form: one request, queued under the person's role. The
// keys are never shown again, not even on an error (the form comes back empty).
import { type AdminSection, field, HttpError, send, session } from '../context.js';
import { html } from '../html.js';
import { csrfField } from '../layout.js';
import type { Session } from '../sessions.js';

const MAX_KEYS = 1000;

function eraseForm(s: Session) {
  return html`<form class="card" method="post" action="/erase">
    ${csrfField(s)}
    <label for="keys">Subject keys, one per line (at most ${MAX_KEYS}; for more, upload a CSV)</label>
    <textarea id="keys" name="keys" required autocomplete="off" spellcheck="false"></textarea>
    <label for="scope">Scope (brand), for installs keyed per brand; empty otherwise</label>
    <input type="text" id="scope" name="scope" autocomplete="off" />
    <label for="request_key"
      >Request key (optional: the ticket number, so a second submit returns the same request)</label
    >
    <input type="text" id="request_key" name="request_key" maxlength="200" autocomplete="off" />
    <div class="actions"><button>Queue the erasure</button></div>
  </form>`;
}

export const eraseSection: AdminSection = {
  nav: [{ path: '/erase', label: 'Erase keys', when: (s) => s.privileges.operator }],
  register(app, ctx) {
    app.get('/erase', async (req, reply) =>
      send(ctx, req, reply, { title: 'Erase people by key', current: '/erase' }, eraseForm(session(req))),
    );
    app.post('/erase', async (req, reply) => {
      const s = session(req);
      const keys = field(req.body, 'keys')
        .split(/\r?\n/)
        .map((k) => k.trim())
        .filter((k) => k !== '');
      const scope = field(req.body, 'scope');
      const requestKey = field(req.body, 'request_key');
      req.submitted.push(...keys, scope, requestKey);
      if (keys.length === 0) throw new HttpError(400, 'enter at least one subject key');
      if (keys.length > MAX_KEYS) throw new HttpError(400, `at most ${MAX_KEYS} keys per form: upload a CSV instead`);
      const id = await s.lethe.requestErasure(keys, {
        source: 'admin',
        requestKey: requestKey || undefined,
        scopes: scope ? [scope] : undefined,
      });
      return reply.redirect(`/requests/${id}`, 303);
    });
  },
};
