// lethe retention set|list|preview|approve|run|history: retention policies
// (pii.set_retention_policy and friends). Output: versions, counts, subject hashes, request ids.
import type { Command } from 'commander';
import { approveRetention } from '../sql/approveRetention.js';
import { enforceRetention } from '../sql/enforceRetention.js';
import { previewRetention } from '../sql/previewRetention.js';
import { retentionHistory } from '../sql/retentionHistory.js';
import { retentionPolicies } from '../sql/retentionPolicies.js';
import { type RetentionSchedule, setRetentionPolicy } from '../sql/setRetentionPolicy.js';
import { action, EXIT, globals, modeOption, positiveInt, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson, table, tableCounts } from './output.js';

const SCHEDULES: readonly RetentionSchedule[] = ['hourly', 'daily', 'weekly', 'monthly'];

function scheduleOption(value: string | undefined): RetentionSchedule | undefined {
  if (value === undefined) return undefined;
  const s = SCHEDULES.find((x) => x === value);
  if (!s) throw new UsageError(`--schedule must be ${SCHEDULES.join(', ')}, got "${value}"`);
  return s;
}

export function addRetentionCommand(program: Command): void {
  const retention = program
    .command('retention')
    .description('retention policies: set, list, preview, approve, run, history');

  retention
    .command('set')
    .description('define or change a policy: a new version, to approve (pii_admin)')
    .argument('<name>', 'policy name (a-z, 0-9, _ . -)')
    .requiredOption('--query <sql>', 'SELECT returning the subject keys to erase (run read-only with your rights)')
    .requiredOption('--max <n>', 'safety limit: a run selecting more subjects than this erases nobody')
    .option('--mode <mode>', 'erase (default) or delete')
    .option('--schedule <period>', 'hourly, daily (default), weekly or monthly: one request per period')
    .option('--enable', "on the worker's schedule (default: off)")
    .option('--kind <kind>', 'subject kind (default: the install’s one kind)')
    .action(
      action(
        async (
          name: string,
          opts: { query: string; max: string; mode?: string; schedule?: string; enable?: boolean; kind?: string },
          cmd: Command,
        ) => {
          const max = positiveInt('--max', opts.max)!;
          const mode = modeOption(opts.mode);
          const schedule = scheduleOption(opts.schedule);
          return withLethe(cmd, async (lethe) => {
            const version = await setRetentionPolicy(lethe.db, name, opts.query, max, {
              mode,
              schedule,
              enabled: opts.enable ?? false,
              kind: opts.kind,
            });
            if (globals(cmd).json) printJson({ policy: name, version });
            else
              print(
                `retention policy ${name} is at version ${version}: preview it (lethe retention preview ${name}), then approve it (lethe retention approve ${name} ${version})\n`,
              );
            return EXIT.ok;
          });
        },
      ),
    );

  retention
    .command('list')
    .description("each policy's current version, approval and last run")
    .action(
      action(async (_opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const policies = await retentionPolicies(lethe.db);
          if (globals(cmd).json) printJson(policies);
          else
            print(
              table(
                policies,
                [
                  'policyName',
                  'version',
                  'approved',
                  'enabled',
                  'schedule',
                  'maxSubjects',
                  'mode',
                  'lastRunAt',
                  'lastOutcome',
                ],
                ['policy', 'version', 'approved', 'enabled', 'schedule', 'max', 'mode', 'last run', 'outcome'],
              ),
            );
          return EXIT.ok;
        }),
      ),
    );

  retention
    .command('preview')
    .description('what enforcing the policy would do now (changes nothing)')
    .argument('<name>', 'policy name')
    .action(
      action(async (name: string, _opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const p = await previewRetention(lethe.db, name);
          if (globals(cmd).json) printJson(p);
          else {
            print(
              keyValues([
                ['policy', name],
                ['version', p.version],
                ['candidates', p.candidates],
                ['held (left out)', p.held],
                ['max subjects', p.maxSubjects],
                ['within limit', p.withinLimit ? 'yes' : 'no: enforcement would be blocked'],
              ]),
            );
            print(tableCounts('rows that would change', p.rowsToChange));
            if (p.sample.length > 0) print(`sample of subject hashes:\n${p.sample.map((h) => `  ${h}\n`).join('')}`);
          }
          return EXIT.ok;
        }),
      ),
    );

  retention
    .command('approve')
    .description("approve the policy's current version (pii_admin)")
    .argument('<name>', 'policy name')
    .argument('<version>', 'the version shown by preview')
    .action(
      action(async (name: string, version: string, _opts, cmd: Command) => {
        const v = positiveInt('version', version)!;
        return withLethe(cmd, async (lethe) => {
          await approveRetention(lethe.db, name, v);
          if (globals(cmd).json) printJson({ policy: name, version: v, approved: true });
          else print(`retention policy ${name} version ${v} approved\n`);
          return EXIT.ok;
        });
      }),
    );

  retention
    .command('run')
    .description('enforce one policy now, or every enabled one (exit 1 when a run is blocked, unapproved or refused)')
    .argument('[name]', 'policy name (default: every enabled policy)')
    .action(
      action(async (name: string | undefined, _opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const runs = await enforceRetention(lethe.db, name);
          if (globals(cmd).json) printJson(runs);
          else
            print(
              table(
                runs,
                ['policyName', 'version', 'outcome', 'candidates', 'held', 'requestId'],
                ['policy', 'version', 'outcome', 'candidates', 'held', 'request'],
              ),
            );
          return runs.some((r) => r.outcome === 'blocked' || r.outcome === 'unapproved' || r.outcome === 'refused')
            ? EXIT.failure
            : EXIT.ok;
        }),
      ),
    );

  retention
    .command('history')
    .description('every retention run, newest first')
    .argument('[name]', 'policy name (default: all)')
    .option('--limit <n>', 'at most n runs', '100')
    .action(
      action(async (name: string | undefined, opts: { limit?: string }, cmd: Command) => {
        const limit = positiveInt('--limit', opts.limit);
        return withLethe(cmd, async (lethe) => {
          const runs = await retentionHistory(lethe.db, name, limit);
          if (globals(cmd).json) printJson(runs);
          else
            print(
              table(
                runs,
                ['at', 'policyName', 'version', 'outcome', 'candidates', 'held', 'maxSubjects', 'requestId', 'runBy'],
                ['at', 'policy', 'version', 'outcome', 'candidates', 'held', 'max', 'request', 'run by'],
              ),
            );
          return EXIT.ok;
        });
      }),
    );

  // index.ts sets exitOverride on top-level commands only.
  for (const sub of retention.commands) sub.exitOverride();
}
