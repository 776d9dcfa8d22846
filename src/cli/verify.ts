import type { Command } from 'commander';
import { action, EXIT, globals, requestIdArg, withLethe } from './context.js';
import { print, printJson, table } from './output.js';

export function addVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description("check, now, that nothing of the request's subjects is left (exit 1 when traces remain)")
    .argument('<request-id>', 'request id (UUID)')
    .action(
      action(async (idArg: string, _opts, cmd: Command) => {
        const id = requestIdArg(idArg);
        return withLethe(cmd, async (lethe) => {
          const status = await lethe.getRequest(id);
          const { verified, residuals } = await lethe.verifyRequest(id);
          if (globals(cmd).json) printJson({ requestId: id, status: status.status, verified, residuals });
          else if (verified)
            print(`request ${id} (${status.status}): verified, no residual trace of its ${status.total} subject(s)\n`);
          else {
            print(`request ${id} (${status.status}): ${residuals.length} residual trace(s)\n\n`);
            print(
              table(
                residuals,
                ['tableName', 'columnName', 'subjectHash', 'detail'],
                ['table', 'column', 'subject hash', 'detail'],
              ),
            );
          }
          return verified ? EXIT.ok : EXIT.failure;
        });
      }),
    );
}
