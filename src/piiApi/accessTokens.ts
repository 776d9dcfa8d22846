// OAuth access tokens of the PII API: the key id and an expiry, signed (HMAC-SHA256) under
// a secret that lives only in this process. Nothing is stored; the key behind a token is
// still checked on every request, so revoking the key ends its tokens too. A restart
// ends them as well: clients fetch a new one, as OAuth clients do.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class AccessTokens {
  readonly #secret = randomBytes(32);

  constructor(readonly ttlSeconds: number) {}

  issue(keyId: string): string {
    const payload = `${keyId}.${Math.floor(Date.now() / 1000) + this.ttlSeconds}`;
    return `lethe_at.${Buffer.from(payload).toString('base64url')}.${this.#sign(payload)}`;
  }

  /** The key id of a valid, unexpired token; undefined for anything else (an API key, say). */
  verify(token: string): string | undefined {
    const [prefix, encoded, signature, extra] = token.split('.');
    if (prefix !== 'lethe_at' || !encoded || !signature || extra !== undefined) return undefined;
    const payload = Buffer.from(encoded, 'base64url').toString('utf8');
    const expected = Buffer.from(this.#sign(payload));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    const [keyId, expiry] = payload.split('.');
    if (!keyId || !UUID.test(keyId) || !(Number(expiry) > Date.now() / 1000)) return undefined;
    return keyId;
  }

  #sign(payload: string): string {
    return createHmac('sha256', this.#secret).update(payload).digest('base64url');
  }
}
