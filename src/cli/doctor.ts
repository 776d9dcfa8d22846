import type { Command } from 'commander';
import { action, databaseUrl, EXIT, globals } from './context.js';
import { print, printJson } from './output.js';

export function addDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check the server, roles, privileges and install, and say what to fix (exit 1 when something must be)')
    .action(
      action(async (_opts, cmd: Command) => {
        const { runDoctor } = await import('../doctor/doctor.js');
        const report = await runDoctor(databaseUrl(cmd));
        if (globals(cmd).json) printJson(report);
        else {
          const width = Math.max(...report.checks.map((c) => c.check.length));
          for (const c of report.checks) {
            print(`${c.status.padEnd(4)}  ${c.check.padEnd(width)}  ${c.detail}\n`);
            if (c.fix) print(`${' '.repeat(width + 8)}fix: ${c.fix}\n`);
          }
          print(report.ok ? 'Lethe can run here.\n' : 'Fix the failures above, then run lethe doctor again.\n');
        }
        return report.ok ? EXIT.ok : EXIT.failure;
      }),
    );
}
