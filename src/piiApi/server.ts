// The PII API a sending platform calls at send time (MoEngage "PII tokenized sending"):
// GET /v1/pii/:token, POST /v1/pii/lookup (1 to 1000 tokens), bearer keys or OAuth 2.0
// client credentials. Values travel only in response bodies: the access log has the
// route template, status, token count and latency, and errors never quote input. With the
// vault's KEK outside the database, the pool's connections carry it (src/piiApi/vaultKek.ts);
// with its data keys in a separate key store, values are decrypted here (src/vault/).
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ApiKey } from '../sql/apiKeys.js';
import { findActiveApiKey } from '../sql/findActiveApiKey.js';
import type { LetheDb } from '../sql/db.js';
import { detokenize } from '../sql/detokenize.js';
import { LetheError, SqlState } from '../sql/errors.js';
import { AccessTokens } from './accessTokens.js';
import type { KeyStore } from '../vault/keyStore.js';
import { KeyStoreVault } from '../vault/keyStoreVault.js';

export const MAX_TOKENS_PER_LOOKUP = 1000;
const PURPOSE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,99}$';
const TOKEN_SCHEMA = { type: 'string', minLength: 1, maxLength: 200 } as const;
const RESULT_SCHEMA = {
  type: 'object',
  required: ['token', 'kind', 'value', 'status'],
  properties: {
    token: { type: 'string' },
    kind: { type: ['string', 'null'] },
    value: { type: ['string', 'null'] },
    status: { type: 'string', enum: ['ok', 'erased', 'unknown'] },
  },
} as const;
const ERROR_SCHEMA = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
} as const;

export interface PiiApiOptions {
  db: LetheDb;
  /** One line per request (JSON): route, method, status, tokens, ms. Never a value. */
  accessLog: (line: string) => void;
  /** Lifetime of OAuth access tokens, seconds. */
  accessTokenTtl?: number;
  /** The vault's separate key store, when its data keys live there (docs/vault.md). */
  keyStore?: KeyStore;
}

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: ApiKey;
    tokenCount?: number;
  }
}

export function buildPiiApi(opts: PiiApiOptions): FastifyInstance {
  // No coercion (a string is not a one-token array) and no silent removal of unknown fields.
  const app = Fastify({
    logger: false,
    bodyLimit: 256 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  const accessTokens = new AccessTokens(opts.accessTokenTtl ?? 3600);

  // OAuth 2.0 token requests are form-encoded (RFC 6749 §4.4.2).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook('onResponse', async (req, reply) => {
    opts.accessLog(
      JSON.stringify({
        at: new Date().toISOString(),
        method: req.method,
        route: req.routeOptions.url ?? 'unmatched',
        status: reply.statusCode,
        tokens: req.tokenCount ?? 0,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      }),
    );
  });

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, _req, reply) => {
    if (err.validation) return reply.code(400).send({ error: 'bad_request', message: err.message });
    if (err instanceof LetheError && err.isBadInput) {
      // Lethe's own messages name positions and rules, never values.
      return reply.code(400).send({ error: 'bad_request', message: err.message });
    }
    if (err instanceof LetheError && (err.code === SqlState.objectNotInPrerequisiteState || err.code === '28000')) {
      // The vault's KEK is held outside the database and this server has none, or a wrong one.
      return reply
        .code(503)
        .send({ error: 'vault_locked', message: 'the vault key-encryption key is missing or wrong' });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: 'bad_request', message: 'malformed request' });
    }
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });

  // The key is checked on every request, so a revoked key stops working at once.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const presented = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/.exec(req.headers.authorization ?? '')?.[1];
    const keyId = presented && accessTokens.verify(presented);
    const key = presented ? await findActiveApiKey(opts.db, keyId ? { id: keyId } : { key: presented }) : undefined;
    if (!key) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="lethe-pii-api"')
        .send({ error: 'unauthorized', message: 'missing, unknown or revoked API key' });
    }
    req.apiKey = key;
  };
  const requireDispatcher = async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.apiKey?.scope !== 'dispatcher') {
      return reply.code(403).send({ error: 'forbidden', message: 'this key may not look values up (scope ping)' });
    }
  };
  const keyStoreVault = opts.keyStore && new KeyStoreVault(opts.db, opts.keyStore);
  const lookup = (req: FastifyRequest, tokens: string[], purpose: string) => {
    req.tokenCount = tokens.length;
    const client = `key:${req.apiKey!.id}`;
    return keyStoreVault
      ? keyStoreVault.detokenize(tokens, purpose, client)
      : detokenize(opts.db, tokens, purpose, client);
  };

  app.get<{ Params: { token: string }; Querystring: { purpose?: string } }>(
    '/v1/pii/:token',
    {
      onRequest: [authenticate, requireDispatcher],
      schema: {
        params: { type: 'object', required: ['token'], properties: { token: TOKEN_SCHEMA } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { purpose: { type: 'string', pattern: PURPOSE_PATTERN } },
        },
        response: { 200: RESULT_SCHEMA, '4xx': ERROR_SCHEMA },
      },
    },
    async (req) => (await lookup(req, [req.params.token], req.query.purpose ?? 'pii-api:get'))[0],
  );

  app.post<{ Body: { tokens: string[]; purpose: string } }>(
    '/v1/pii/lookup',
    {
      onRequest: [authenticate, requireDispatcher],
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['tokens', 'purpose'],
          properties: {
            tokens: { type: 'array', minItems: 1, maxItems: MAX_TOKENS_PER_LOOKUP, items: TOKEN_SCHEMA },
            purpose: { type: 'string', pattern: PURPOSE_PATTERN },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['results'],
            properties: { results: { type: 'array', items: RESULT_SCHEMA } },
          },
          '4xx': ERROR_SCHEMA,
        },
      },
    },
    async (req) => ({ results: await lookup(req, req.body.tokens, req.body.purpose) }),
  );

  app.get(
    '/v1/ping',
    {
      onRequest: [authenticate],
      schema: {
        response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, scope: { type: 'string' } } } },
      },
    },
    async (req) => ({ ok: true, scope: req.apiKey!.scope }),
  );

  // OAuth 2.0 client credentials (RFC 6749 §4.4): client_id is the key's id, client_secret
  // the key, in the body or as HTTP Basic.
  app.post<{ Body: { grant_type?: string; client_id?: string; client_secret?: string } }>(
    '/oauth/token',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            grant_type: { type: 'string', maxLength: 64 },
            client_id: { type: 'string', maxLength: 64 },
            client_secret: { type: 'string', maxLength: 512 },
            scope: { type: 'string', maxLength: 256 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              access_token: { type: 'string' },
              token_type: { type: 'string' },
              expires_in: { type: 'integer' },
              scope: { type: 'string' },
            },
          },
          '4xx': ERROR_SCHEMA,
        },
      },
    },
    async (req, reply) => {
      const body = req.body ?? {};
      const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '')?.[1];
      const [basicId, basicSecret] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':', 2) : [];
      const clientId = body.client_id ?? (basicId !== undefined ? decodeURIComponent(basicId) : undefined);
      const clientSecret =
        body.client_secret ?? (basicSecret !== undefined ? decodeURIComponent(basicSecret) : undefined);
      if (body.grant_type !== 'client_credentials') {
        return reply
          .code(400)
          .send({ error: 'unsupported_grant_type', message: 'grant_type must be client_credentials' });
      }
      const key = clientSecret ? await findActiveApiKey(opts.db, { key: clientSecret }) : undefined;
      if (!key || key.id !== clientId?.toLowerCase()) {
        return reply.code(401).send({ error: 'invalid_client', message: 'unknown client or wrong secret' });
      }
      return {
        access_token: accessTokens.issue(key.id),
        token_type: 'Bearer',
        expires_in: accessTokens.ttlSeconds,
        scope: key.scope,
      };
    },
  );

  return app;
}
