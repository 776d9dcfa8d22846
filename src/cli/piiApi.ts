// lethe pii-api --listen 127.0.0.1:PORT: the PII API for sending platforms, until
// SIGTERM/SIGINT. lethe pii-api keys create|list|revoke manage its keys (as pii_admin).
// The server's own database role needs pii_dispatcher only. With the KEK held outside the
// database, the server's connections carry it (--kek-file or LETHE_VAULT_KEK), and
// lethe pii-api kek rotate rewraps the data keys under a new one.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createDb, createPool } from '../sql/db.js';
import { keyStoreFromOptions } from './keyStore.js';
import type { ApiKeyScope } from '../sql/apiKeys.js';
import { createApiKey } from '../sql/createApiKey.js';
import { listApiKeys } from '../sql/listApiKeys.js';
import { revokeApiKey } from '../sql/revokeApiKey.js';
import { LetheError } from '../sql/errors.js';
import { type KekLocation, rotateVaultKek } from '../sql/rotateVaultKek.js';
import { newVaultKek, readVaultKek, vaultKekOptions, VaultKekError } from '../piiApi/vaultKek.js';
import { action, databaseUrl, EXIT, globals, info, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson, table } from './output.js';

function listenAddress(value: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new UsageError(`--listen expects host:port (e.g. 127.0.0.1:8080), got "${value}"`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

function currentKek(file: string | undefined): string | undefined {
  try {
    return readVaultKek(file);
  } catch (err) {
    throw err instanceof VaultKekError ? new UsageError(err.message) : err;
  }
}

export function addPiiApiCommand(program: Command): void {
  const piiApi = program
    .command('pii-api')
    .description('serve the PII API (GET /v1/pii/:token, POST /v1/pii/lookup, POST /oauth/token) until SIGTERM/SIGINT')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--token-ttl <seconds>', 'lifetime of OAuth access tokens', '3600')
    .option('--kek-file <path>', 'the vault KEK when it is held outside the database (else LETHE_VAULT_KEK)')
    .option(
      '--key-store-url <url>',
      "the vault's separate key store, when its data keys live there (else $LETHE_KEY_STORE_URL)",
    )
    .action(
      action(
        async (opts: { listen: string; tokenTtl: string; kekFile?: string; keyStoreUrl?: string }, cmd: Command) => {
          const { host, port } = listenAddress(opts.listen);
          const ttl = Number(opts.tokenTtl);
          if (!Number.isInteger(ttl) || ttl < 60) throw new UsageError('--token-ttl must be an integer of at least 60');
          const { buildPiiApi } = await import('../piiApi/server.js');
          const options = vaultKekOptions({ current: currentKek(opts.kekFile) });
          const pool = createPool({
            connectionString: databaseUrl(cmd),
            application_name: 'lethe-pii-api',
            max: 8,
            ...(options && { options }),
          });
          const keyStore = keyStoreFromOptions(opts);
          const app = buildPiiApi({
            db: createDb(pool),
            accessLog: (line) => process.stdout.write(`${line}\n`),
            accessTokenTtl: ttl,
            keyStore,
          });
          const address = await app.listen({ host, port });
          info(`[lethe pii-api] listening on ${address} (pid ${process.pid})`);
          await new Promise<void>((resolve) => {
            const stop = (signal: NodeJS.Signals) => {
              info(`[lethe pii-api] ${signal}: stopping`);
              resolve();
            };
            process.once('SIGTERM', stop);
            process.once('SIGINT', stop);
          });
          await app.close();
          await pool.end();
          await keyStore?.close();
          return EXIT.ok;
        },
      ),
    );

  const keys = piiApi.command('keys').description('PII API keys (stored hashed; a new key is printed once)');
  keys
    .command('create')
    .description('create a key; it carries the dispatcher right unless --scope ping')
    .argument('<name>', 'a name for the key (e.g. moengage-prod)')
    .option('--scope <scope>', 'dispatcher (look values up) or ping (authenticate only)', 'dispatcher')
    .action(
      action(async (name: string, opts: { scope: string }, cmd: Command) => {
        if (opts.scope !== 'dispatcher' && opts.scope !== 'ping')
          throw new UsageError(`--scope must be dispatcher or ping, got "${opts.scope}"`);
        return withLethe(cmd, async (lethe) => {
          const k = await createApiKey(lethe.db, name, opts.scope as ApiKeyScope);
          if (globals(cmd).json) printJson(k);
          else {
            print(
              keyValues([
                ['id', k.id],
                ['name', k.name],
                ['scope', k.scope],
                ['key', k.key],
              ]),
            );
            info('Store the key now: it is not kept and cannot be shown again.');
          }
          return EXIT.ok;
        });
      }),
    );
  keys
    .command('list')
    .description('list keys (never the keys themselves)')
    .action(
      action(async (_opts: unknown, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const rows = await listApiKeys(lethe.db);
          if (globals(cmd).json) printJson(rows);
          else print(table(rows, ['id', 'name', 'scope', 'createdBy', 'createdAt', 'revokedAt']));
          return EXIT.ok;
        }),
      ),
    );
  keys
    .command('revoke')
    .description('revoke a key by name or id; the running server refuses it from its next request')
    .argument('<name-or-id>')
    .action(
      action(async (nameOrId: string, _opts: unknown, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const n = await revokeApiKey(lethe.db, nameOrId);
          if (globals(cmd).json) printJson({ revoked: n });
          else print(`revoked ${n} key(s)\n`);
          return EXIT.ok;
        }),
      ),
    );
  for (const c of [keys, ...keys.commands]) c.exitOverride();

  const kek = piiApi.command('kek').description("the vault's key-encryption key");
  kek
    .command('rotate')
    .description(
      'rewrap every data key under a new KEK (embedded: made in the database; external: written to --new-kek-file)',
    )
    .option('--to <location>', 'embedded or external (default: where the KEK is now)')
    .option('--kek-file <path>', 'the current KEK when it is external (else LETHE_VAULT_KEK)')
    .option('--new-kek-file <path>', 'where to write a new external KEK (created with mode 0600; must not exist)')
    .action(
      action(async (opts: { to?: string; kekFile?: string; newKekFile?: string }, cmd: Command) => {
        if (opts.to !== undefined && opts.to !== 'embedded' && opts.to !== 'external')
          throw new UsageError(`--to must be embedded or external, got "${opts.to}"`);
        const current = currentKek(opts.kekFile);
        const external = opts.to === 'external' || (opts.to === undefined && current !== undefined);
        if (external && !opts.newKekFile) throw new UsageError('a rotation to an external KEK needs --new-kek-file');
        const next = external ? newVaultKek() : undefined;
        // The new KEK is on disk before any key is wrapped under it, and stays there whatever
        // happens: a rotation that committed while its answer was lost still needs it.
        if (next) writeFileSync(opts.newKekFile!, `${next}\n`, { mode: 0o600, flag: 'wx' });
        const options = vaultKekOptions({ current, next });
        const pool = createPool({
          connectionString: databaseUrl(cmd),
          application_name: 'lethe-cli',
          max: 1,
          ...(options && { options }),
        });
        try {
          const r = await rotateVaultKek(createDb(pool), opts.to as KekLocation | undefined);
          if (globals(cmd).json) printJson(r);
          else
            print(
              keyValues([
                ['kek location', r.kekLocation],
                ['data keys rewrapped', String(r.rewrappedKeys)],
                ...(next ? ([['new KEK file', opts.newKekFile!]] as [string, string][]) : []),
              ]),
            );
          if (current)
            info('The old KEK opens nothing any more: give the new one to the PII API and every tokenizing session.');
          return EXIT.ok;
        } catch (err) {
          if (next && err instanceof LetheError && !err.code.startsWith('08'))
            info(`The vault still uses the current KEK; ${opts.newKekFile} was not used and may be removed.`);
          throw err;
        } finally {
          await pool.end();
        }
      }),
    );
  for (const c of [kek, ...kek.commands]) c.exitOverride();
}
