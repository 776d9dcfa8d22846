// Sign-in with one's own database role, and sign-out. The sign-in form has its own CSRF
// token (a cookie and a hidden field that must match), since there is no session yet.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type AdminContext, type AdminSection, field, send } from '../context.js';
import { html } from '../html.js';
import { notice } from '../layout.js';
import { newToken, sameToken } from '../sessions.js';
import { LetheError } from '../../sql/errors.js';

export const SESSION_COOKIE = 'lethe_session';
const SIGN_IN_COOKIE = 'lethe_sign_in';

function cookieOptions(req: FastifyRequest) {
  return { httpOnly: true, sameSite: 'strict', secure: req.protocol === 'https', path: '/' } as const;
}

function signInPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, message?: string) {
  const token = newToken();
  reply.setCookie(SIGN_IN_COOKIE, token, cookieOptions(req));
  const expired = (req.query as { expired?: string }).expired !== undefined;
  return send(
    ctx,
    req,
    reply,
    { title: 'Sign in' },
    html`${message ? notice('error', message) : expired ? notice('info', 'You were signed out after a period of inactivity.') : ''}
      <form class="card" method="post" action="/sign-in">
        <input type="hidden" name="_csrf" value="${token}" />
        <p class="muted">
          Sign in with your own PostgreSQL role. What you may do is what its grants allow (pii_operator submits and
          follows erasures, pii_auditor reads, pii_admin both).
        </p>
        <label for="user">Database role</label>
        <input type="text" id="user" name="user" autocomplete="username" required autofocus />
        <label for="password">Password</label>
        <input type="password" id="password" name="password" autocomplete="current-password" required />
        <div class="actions"><button>Sign in</button></div>
      </form>`,
  );
}

export const authSection: AdminSection = {
  nav: [],
  register(app, ctx) {
    app.get('/sign-in', { config: { public: true } }, async (req, reply) => {
      if (req.session) return reply.redirect('/requests', 303);
      return signInPage(ctx, req, reply);
    });

    app.post('/sign-in', { config: { public: true } }, async (req, reply) => {
      if (!sameToken(field(req.body, '_csrf'), req.cookies[SIGN_IN_COOKIE] ?? '')) {
        return signInPage(ctx, req, reply.code(403), 'This form has expired: please sign in again.');
      }
      const user = field(req.body, 'user');
      const password = (req.body as Record<string, unknown>).password;
      if (!user || typeof password !== 'string' || !password) {
        return signInPage(ctx, req, reply.code(400), 'Enter your database role and password.');
      }
      const wait = ctx.signInLimiter.retryAfter(req.ip, user);
      if (wait > 0) {
        return signInPage(
          ctx,
          req,
          reply.code(429).header('retry-after', String(wait)),
          `Too many failed sign-ins: try again in ${wait} s.`,
        );
      }
      try {
        const s = await ctx.sessions.signIn(user, password);
        ctx.signInLimiter.recordSuccess(user);
        reply.clearCookie(SIGN_IN_COOKIE, { path: '/' });
        reply.setCookie(SESSION_COOKIE, s.id, cookieOptions(req));
        return reply.redirect('/requests', 303);
      } catch (err) {
        if (!(err instanceof LetheError)) throw err;
        if (err.code === '28P01' || err.code === '28000') ctx.signInLimiter.recordFailure(req.ip, user);
        const message =
          err.code === '28P01' || err.code === '28000'
            ? 'Sign-in failed: wrong role name or password.'
            : err.code === '42501'
              ? `This role may not use Lethe: ${err.message}.`
              : err.code.startsWith('08')
                ? 'The database cannot be reached right now.'
                : `Sign-in failed (SQLSTATE ${err.code}).`;
        return signInPage(ctx, req, reply.code(err.code === '42501' ? 403 : 401), message);
      }
    });

    app.post('/sign-out', async (req, reply) => {
      await ctx.sessions.end(req.session!.id);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.redirect('/sign-in', 303);
    });
  },
};
