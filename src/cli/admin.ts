// lethe admin --listen 127.0.0.1:8080: the privacy team's web pages (src/admin). Runs
// until SIGINT or SIGTERM. Everyone signs in with their own database role.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildAdminServer } from '../admin/server.js';
import { action, databaseUrl, EXIT, info, positiveInt, UsageError } from './context.js';

interface AdminOptions {
  listen: string;
  idleTimeout: string;
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: boolean;
}

export function addAdminCommand(program: Command): void {
  program
    .command('admin')
    .description('serve the admin web pages (sign in with your own database role); see docs/admin.md')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--idle-timeout <minutes>', 'sign out after this many idle minutes', '15')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'and this private key (PEM)')
    .option('--trust-proxy', 'behind a TLS proxy: trust X-Forwarded-Proto')
    .action(
      action(async (opts: AdminOptions, cmd: Command) => {
        const m = /^(.+):(\d+)$/.exec(opts.listen);
        if (!m) throw new UsageError(`--listen must be host:port, got "${opts.listen}"`);
        if (!!opts.tlsCert !== !!opts.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
        const server = await buildAdminServer({
          databaseUrl: databaseUrl(cmd),
          idleTimeoutMs: positiveInt('--idle-timeout', opts.idleTimeout)! * 60_000,
          https: opts.tlsCert ? { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey!) } : undefined,
          trustProxy: opts.trustProxy,
          log: info,
        });
        const address = await server.app.listen({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
        info(`lethe admin: listening on ${address}`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
        return EXIT.ok;
      }),
    );
}
