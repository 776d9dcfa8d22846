// lethe key-store init|bind|shred: the vault's data keys in a separate key store (a second
// PostgreSQL database; docs/vault.md "Separate key store"). The key store's URL comes from
// --key-store-url or LETHE_KEY_STORE_URL, never from the application database.
import type { Command } from 'commander';
import { useKeyStore } from '../sql/useKeyStore.js';
import { initKeyStore, PostgresKeyStore } from '../vault/keyStore.js';
import { KeyStoreVault, shreddedMessage } from '../vault/keyStoreVault.js';
import { action, EXIT, globals, info, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson } from './output.js';

const KEY_STORE_URL_HELP = "the vault's separate key store (default: $LETHE_KEY_STORE_URL)";

/** The key store named by --key-store-url or LETHE_KEY_STORE_URL, if any. */
export function keyStoreFromOptions(opts: { keyStoreUrl?: string }): PostgresKeyStore | undefined {
  const url = keyStoreUrl(opts);
  return url ? new PostgresKeyStore(url) : undefined;
}

const keyStoreUrl = (opts: { keyStoreUrl?: string }) =>
  opts.keyStoreUrl ?? (process.env.LETHE_KEY_STORE_URL || undefined);

function requiredKeyStoreUrl(opts: { keyStoreUrl?: string }): string {
  const url = keyStoreUrl(opts);
  if (!url) throw new UsageError('no key store given: pass --key-store-url postgres://… or set LETHE_KEY_STORE_URL');
  return url;
}

export function addKeyStoreCommand(program: Command): void {
  const keyStore = program
    .command('key-store')
    .description("the vault's data keys in a separate key store (a second database whose backups you keep short)");
  keyStore
    .command('init')
    .description("create the key store's schema in its database (idempotent) and print its id")
    .option('--key-store-url <url>', KEY_STORE_URL_HELP)
    .action(
      action(async (opts: { keyStoreUrl?: string }, cmd: Command) => {
        const storeId = await initKeyStore(requiredKeyStoreUrl(opts));
        if (globals(cmd).json) printJson({ storeId });
        else print(keyValues([['store id', storeId]]));
        return EXIT.ok;
      }),
    );
  keyStore
    .command('bind')
    .description('bind the vault of DATABASE_URL to the key store, before the first tokenize (pii_admin)')
    .option('--key-store-url <url>', KEY_STORE_URL_HELP)
    .action(
      action(async (opts: { keyStoreUrl?: string }, cmd: Command) => {
        const store = new PostgresKeyStore(requiredKeyStoreUrl(opts));
        try {
          const storeId = await store.storeId();
          await withLethe(cmd, (lethe) => useKeyStore(lethe.db, storeId));
          if (globals(cmd).json) printJson({ storeId });
          else info(`the vault's data keys live in key store ${storeId} from now on`);
          return EXIT.ok;
        } finally {
          await store.close();
        }
      }),
    );
  keyStore
    .command('shred')
    .description('have the key store destroy the data keys of erased subjects now (the worker does it every minute)')
    .option('--key-store-url <url>', KEY_STORE_URL_HELP)
    .action(
      action(async (opts: { keyStoreUrl?: string }, cmd: Command) => {
        const store = new PostgresKeyStore(requiredKeyStoreUrl(opts));
        try {
          const shredded = await withLethe(cmd, (lethe) => new KeyStoreVault(lethe.db, store).shredErasedKeys());
          if (globals(cmd).json) printJson({ shredded });
          else info(shreddedMessage(shredded));
          return EXIT.ok;
        } finally {
          await store.close();
        }
      }),
    );
  for (const c of [keyStore, ...keyStore.commands]) c.exitOverride();
}
