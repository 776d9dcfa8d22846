// `lethe admin`: the privacy team's web pages, served by Fastify, rendered on the server,
// no script. Everyone signs in with their own database role; every query runs under it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import fastifyMultipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { CsvRejectedError } from '../csv/importCsv.js';
import { LetheError, SqlState } from '../sql/errors.js';
import { type AdminContext, type AdminSection, HttpError, redact, send } from './context.js';
import { html } from './html.js';
import { notice, STYLESHEET } from './layout.js';
import { auditSection } from './pages/audit.js';
import { authSection, SESSION_COOKIE } from './pages/auth.js';
import { eraseSection } from './pages/erase.js';
import { holdsSection } from './pages/holds.js';
import { lookupSection } from './pages/lookup.js';
import { requestsSection } from './pages/requests.js';
import { retentionSection } from './pages/retention.js';
import { uploadSection } from './pages/upload.js';
import { sameToken, SessionStore } from './sessions.js';
import { type SignInLimit, SignInLimiter } from './signInLimiter.js';

/** The page groups, in navigation order. */
export const ADMIN_SECTIONS: readonly AdminSection[] = [
  requestsSection,
  uploadSection,
  eraseSection,
  lookupSection,
  retentionSection,
  holdsSection,
  auditSection,
  authSection,
];

export interface AdminServerOptions {
  /** Host, port and database people sign in to; a user or password in it is not used. */
  databaseUrl: string;
  /** Sign-out after this long without a request. Default 15 minutes. */
  idleTimeoutMs?: number;
  /** Serve HTTPS (cookies are then Secure). */
  https?: { key: Buffer; cert: Buffer };
  /** Behind a TLS-terminating proxy: trust X-Forwarded-Proto (Secure cookies when it says https). */
  trustProxy?: boolean;
  /** Largest CSV accepted. Default 2 GiB. */
  maxUploadBytes?: number;
  /** Failed sign-ins allowed per client address and per role name in a window; then 429. Default 5 a minute. */
  signInLimit?: SignInLimit;
  /** One line per response (method, route pattern, status, time) and per server error (its code only). */
  log?: (line: string) => void;
}

export interface AdminServer {
  app: FastifyInstance;
  /** Where uploads wait for confirmation (private to this process, removed on close). */
  uploadDir: string;
  close(): Promise<void>;
}

export async function buildAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const uploadDir = await mkdtemp(join(tmpdir(), 'lethe-admin-'));
  const sessions = new SessionStore({
    databaseUrl: opts.databaseUrl,
    idleTimeoutMs: opts.idleTimeoutMs ?? 15 * 60_000,
    onEnd: async (s) => {
      await Promise.all([...s.uploads.values()].map((u) => rm(u.path, { force: true })));
    },
  });
  const ctx: AdminContext = {
    sessions,
    signInLimiter: new SignInLimiter(opts.signInLimit),
    uploadDir,
    nav: ADMIN_SECTIONS.flatMap((s) => s.nav),
  };
  const app = Fastify({
    logger: false,
    trustProxy: opts.trustProxy ?? false,
    ...(opts.https ? { https: opts.https } : {}),
  } as { logger: false });

  // Forms only: no JSON parser (its errors quote the body).
  app.removeAllContentTypeParsers();
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 1 << 20 });
  await app.register(fastifyMultipart, {
    limits: { fileSize: opts.maxUploadBytes ?? 2 ** 31, files: 1, fields: 10, fieldSize: 4096 },
  });
  app.decorateRequest('session', undefined);
  app.decorateRequest('submitted', null as unknown as string[]);

  app.addHook('onRequest', async (req, reply) => {
    req.submitted = [];
    reply.headers({
      'cache-control': 'no-store',
      'content-security-policy':
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
    });
    req.session = sessions.get(req.cookies[SESSION_COOKIE]);
    if (req.routeOptions.config.public) return;
    if (!req.session) {
      if (req.method === 'GET')
        return reply.redirect(`/sign-in${req.cookies[SESSION_COOKIE] ? '?expired=1' : ''}`, 303);
      throw new HttpError(401, 'your session has ended: sign in again');
    }
  });
  // Every form carries the session's CSRF token (multipart forms are checked by their handler).
  app.addHook('preHandler', async (req) => {
    if (req.method !== 'POST' || req.routeOptions.config.public || req.routeOptions.config.csrfInHandler) return;
    if (!sameToken((req.body as Record<string, string> | undefined)?._csrf, req.session!.csrfToken))
      throw new HttpError(403, 'this form has expired or did not come from this site: reload the page and try again');
  });
  app.addHook('onResponse', async (req, reply) => {
    opts.log?.(
      `${req.method} ${req.routeOptions.url ?? '(no route)'} ${reply.statusCode} ${Math.round(reply.elapsedTime)}ms`,
    );
  });

  app.get('/admin.css', { config: { public: true } }, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=3600').send(STYLESHEET),
  );
  app.get('/', async (_req, reply) => reply.redirect('/requests', 303));
  for (const section of ADMIN_SECTIONS) section.register(app, ctx);

  app.setNotFoundHandler((req, reply) =>
    send(ctx, req, reply.code(404), { title: 'Not found' }, notice('error', 'There is no such page.')),
  );
  app.setErrorHandler((err: unknown, req, reply) => answerError(ctx, err, req, reply, opts.log));

  return {
    app,
    uploadDir,
    close: async () => {
      await app.close();
      await sessions.closeAll();
      await rm(uploadDir, { recursive: true, force: true });
    },
  };
}

/** Maps an error to a status and a message that quotes nothing the person submitted. */
function answerError(
  ctx: AdminContext,
  err: unknown,
  req: FastifyRequest,
  reply: FastifyReply,
  log: ((line: string) => void) | undefined,
): FastifyReply {
  let status = 500;
  let message = 'Something went wrong on the server.';
  if (err instanceof HttpError) {
    status = err.statusCode;
    message = err.message;
  } else if (err instanceof LetheError) {
    status =
      err.code === SqlState.insufficientPrivilege
        ? 403
        : err.code === SqlState.undefinedObject
          ? 404
          : err.code === SqlState.objectNotInPrerequisiteState
            ? 409
            : err.isBadInput
              ? 400
              : 500;
    message =
      status === 403
        ? `Your database role may not do this (SQLSTATE ${err.code}): ${err.message}`
        : `${err.message} (SQLSTATE ${err.code})${err.hint ? `. ${err.hint}` : ''}`;
  } else if (err instanceof CsvRejectedError) {
    status = 400;
    message = err.message;
  } else if (typeof (err as { statusCode?: unknown }).statusCode === 'number') {
    // Fastify's own (body too large, bad content type): their messages carry no values.
    status = (err as { statusCode: number }).statusCode;
    message = (err as Error).message;
  }
  if (status >= 500) log?.(`error ${(err as { code?: string }).code ?? (err as Error).name ?? 'unknown'}`);
  return send(
    ctx,
    req,
    reply.code(status),
    { title: status === 403 ? 'Not allowed' : status === 404 ? 'Not found' : 'Error' },
    html`${notice('error', redact(message, req.submitted))}
      <p><a href="/requests">Back to the requests</a></p>`,
  );
}
