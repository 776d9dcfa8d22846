// What every admin page shares: the session on the request, rendering inside the frame,
// the errors a handler throws, and the rule that no submitted identifier is ever echoed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRequestId } from '../sql/requestId.js';
import type { Html } from './html.js';
import { type NavEntry, page, type PageOptions } from './layout.js';
import type { Session, SessionStore } from './sessions.js';
import type { SignInLimiter } from './signInLimiter.js';

declare module 'fastify' {
  interface FastifyRequest {
    session: Session | undefined;
    /** Values the person typed or uploaded: error messages are scrubbed of them. */
    submitted: string[];
  }
  interface FastifyContextConfig {
    /** Reachable without signing in (sign-in page, stylesheet). */
    public?: boolean;
    /** The handler checks the CSRF token itself (multipart bodies are read as a stream). */
    csrfInHandler?: boolean;
  }
}

export interface AdminContext {
  sessions: SessionStore;
  signInLimiter: SignInLimiter;
  /** Private directory (0700) where uploads wait for confirmation. */
  uploadDir: string;
  nav: readonly NavEntry[];
}

/** A group of pages (one of ADMIN_SECTIONS in src/admin/server.ts): nav entries plus routes. */
export interface AdminSection {
  nav: readonly NavEntry[];
  register(app: FastifyInstance, ctx: AdminContext): void;
}

/** An error with the HTTP status to answer and a message safe to show (no values). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export function session(req: FastifyRequest): Session {
  if (!req.session) throw new HttpError(401, 'sign in first');
  return req.session;
}

export function send(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  opts: Omit<PageOptions, 'session' | 'nav'>,
  body: Html,
): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(page({ ...opts, session: req.session, nav: ctx.nav }, body).text);
}

/** Replaces every submitted value in a message (a database error can quote its input). */
export function redact(text: string, submitted: readonly string[]): string {
  let out = text;
  for (const v of submitted) if (v.length > 0) out = out.split(v).join('…');
  return out;
}

export function requestIdParam(req: FastifyRequest): string {
  const id = (req.params as { id?: string }).id;
  if (!isRequestId(id)) throw new HttpError(404, 'no such request');
  return id.toLowerCase();
}

/** A form field as one trimmed string ('' when absent). */
export function field(body: unknown, name: string): string {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v.trim() : '';
}
