#!/usr/bin/env node
// `lethe`: wires one file per command into commander and turns outcomes into exit codes:
// 0 ok, 1 failure, 2 bad usage or input (see context.ts).
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { CsvRejectedError } from '../csv/importCsv.js';
import { LetheError } from '../sql/errors.js';
import { addAdminCommand } from './admin.js';
import { EXIT, UsageError } from './context.js';
import { addDemoCommand } from './demo.js';
import { addDoctorCommand } from './doctor.js';
import { addEraseCommand } from './erase.js';
import { addGrantCommand } from './grant.js';
import { addImportCommand } from './import.js';
import { addLintCommand } from './lint.js';
import { addMigrateCommand } from './migrate.js';
import { addRestoreCheckCommand } from './restoreCheck.js';
import { addPiiApiCommand } from './piiApi.js';
import { addKeyStoreCommand } from './keyStore.js';
import { addRetentionCommand } from './retention.js';
import { addSqlCommand } from './sql.js';
import { addStatusCommand } from './status.js';
import { addVerifyCommand } from './verify.js';
import { addWasErasedCommand } from './wasErased.js';
import { addWorkerCommand } from './worker.js';

export function buildProgram(): Command {
  const program = new Command('lethe')
    .description('GDPR erasure and PII masking inside PostgreSQL')
    .option('--database-url <url>', 'PostgreSQL URL (default: $DATABASE_URL)')
    .option('--json', 'machine-readable output on stdout')
    .version((createRequire(import.meta.url)('../../package.json') as { version: string }).version)
    .showHelpAfterError('(run lethe --help for usage)')
    .exitOverride();
  for (const add of [
    addMigrateCommand,
    addSqlCommand,
    addEraseCommand,
    addImportCommand,
    addStatusCommand,
    addVerifyCommand,
    addWasErasedCommand,
    addWorkerCommand,
    addRestoreCheckCommand,
    addRetentionCommand,
    addGrantCommand,
    addLintCommand,
    addDoctorCommand,
    addPiiApiCommand,
    addKeyStoreCommand,
    addDemoCommand,
    addAdminCommand,
  ]) {
    add(program);
  }
  // Subcommands inherit exitOverride so usage errors come back here as CommanderError.
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI; resolves to the exit code (the one a command's action recorded, or the error's). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    if (argv.length <= 2) {
      program.outputHelp();
      return EXIT.usage;
    }
    process.exitCode = undefined;
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    // Help and version are "errors" too in commander's exitOverride mode.
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof UsageError) {
    process.stderr.write(`lethe: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof CsvRejectedError) {
    process.stderr.write(`lethe: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof LetheError) {
    // Message and hint only: a server DETAIL can quote row values.
    process.stderr.write(`lethe: ${err.message} (SQLSTATE ${err.code})\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    return err.isBadInput ? EXIT.usage : EXIT.failure;
  }
  const e = err as { code?: string; message?: string };
  if (e?.code === 'ENOENT' || e?.code === 'EACCES' || e?.code === 'EISDIR') {
    process.stderr.write(`lethe: ${e.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`lethe: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failure;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lethe: ${String(err)}\n`);
    process.exitCode = EXIT.failure;
  },
);
