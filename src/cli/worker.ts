// lethe worker: runs the erasure jobs until SIGTERM/SIGINT, then finishes the chunk in
// flight and exits 0. A second signal exits at once (the chunk rolls back, nothing is lost).
import type { Command } from 'commander';
import { action, databaseUrl, EXIT, positiveInt } from './context.js';
import { keyStoreFromOptions } from './keyStore.js';

interface WorkerOptions {
  concurrency?: string;
  chunkSize?: string;
  ledgerDir?: string;
  keyStoreUrl?: string;
}

export function addWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('process erasure requests (graphile-worker) until SIGTERM/SIGINT')
    .option('-c, --concurrency <n>', 'requests, and chunks of one request, processed at once', '1')
    .option('--chunk-size <n>', 'subjects per chunk (default: pii.settings.chunk_size)')
    .option(
      '--ledger-dir <dir>',
      'copy the erasure ledger to this directory, outside the database backups (default: $LETHE_LEDGER_DIR)',
    )
    .option(
      '--key-store-url <url>',
      "the vault's separate key store: destroy erased subjects' data keys there (default: $LETHE_KEY_STORE_URL)",
    )
    .action(
      action(async (opts: WorkerOptions, cmd: Command) => {
        // Loaded on use: graphile-worker and the demo's modules slow every other command's start.
        const { runWorker } = await import('../worker/runWorker.js');
        const keyStore = keyStoreFromOptions(opts);
        const worker = await runWorker({
          keyStore,
          connectionString: databaseUrl(cmd),
          concurrency: positiveInt('--concurrency', opts.concurrency),
          chunkSize: positiveInt('--chunk-size', opts.chunkSize),
          ledgerDir: opts.ledgerDir ?? (process.env.LETHE_LEDGER_DIR || undefined),
        });
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals) => {
          signals++;
          if (signals > 1) {
            process.stderr.write(`[lethe worker] ${signal} again: exiting now\n`);
            process.exit(130);
          }
          process.stderr.write(`[lethe worker] ${signal}: finishing the chunk in flight, then stopping\n`);
          void worker.stop();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        process.stderr.write(
          `[lethe worker] started (pid ${process.pid}, concurrency ${opts.concurrency}); ${worker.resumed} open request(s) re-queued` +
            `${worker.ledgerDir ? `; ledger copied to ${worker.ledgerDir}` : '; no --ledger-dir: erasures are not copied outside the database'}\n`,
        );
        try {
          await worker.promise;
        } finally {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
        await keyStore?.close();
        process.stderr.write('[lethe worker] stopped\n');
        return EXIT.ok;
      }),
    );
}
