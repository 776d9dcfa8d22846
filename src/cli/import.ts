// lethe import <file.csv>: checks the header and first 20 rows, streams the file into one
// request, prints the report (row numbers and keyed hashes, never keys).
import type { Command } from 'commander';
import { CsvRejectedError, type ImportReport } from '../csv/importCsv.js';
import { PREVIEW_ROWS, type RowError } from '../csv/format.js';
import { action, dueDate, EXIT, globals, info, modeOption, positiveInt, withLethe } from './context.js';
import { formatCell, keyValues, print, printJson, table } from './output.js';
import { progressBar } from './progressBar.js';
import { renderStatus } from './statusView.js';
import { watchRequest } from './watch.js';

interface ImportOptions {
  skipInvalid?: boolean;
  requestKey?: string;
  mode?: string;
  due?: string;
  wait?: boolean;
  limit?: string;
  kind?: string;
}

/** The bar appears once a file is past this many rows: small files finish before it would matter. */
const BAR_AFTER_ROWS = 10_000;

export function addImportCommand(program: Command): void {
  program
    .command('import')
    .description('import a CSV of subjects to erase as one request (see docs/csv.md)')
    .argument(
      '<file>',
      'CSV file: header subject_key (or customer_id, user_ext_id)[,scope|core_sm_brand_id][,kind][,erase]',
    )
    .option('--kind <kind>', 'subject kind of every row (customer, staff); needed when the install has several')
    .option('--skip-invalid', 'import the valid rows and report the invalid ones, instead of rejecting the file')
    .option('--request-key <key>', 'idempotency key: importing again with the same key returns the same request')
    .option('--mode <mode>', 'erase (per table on_erase) or delete (remove every registered row)')
    .option('--due <when>', 'deadline: ISO date/time or a delay such as 48h, 30d')
    .option('--wait', 'wait until the request is done')
    .option('--limit <n>', 'list at most n unmatched and n rejected rows (counts are always complete)', '100')
    .action(
      action(async (file: string, opts: ImportOptions, cmd: Command) => {
        const json = !!globals(cmd).json;
        const mode = modeOption(opts.mode);
        const dueAt = dueDate(opts.due);
        const listLimit = positiveInt('--limit', opts.limit);
        const bar = progressBar(!json);
        return withLethe(cmd, async (lethe) => {
          let report: ImportReport;
          try {
            report = await lethe.importCsv(file, {
              skipInvalid: opts.skipInvalid,
              requestKey: opts.requestKey,
              mode,
              dueAt,
              kind: opts.kind,
              listLimit,
              onPreview: ({ rows, errors }) => {
                if (json) return;
                if (errors.length === 0) info(`${file}: header and first ${rows} row(s) are valid; importing`);
                else if (opts.skipInvalid)
                  info(
                    `${file}: invalid rows among the first ${PREVIEW_ROWS} (they will be skipped):\n${rowErrors(errors)}`,
                  );
              },
              onProgress: (p) => {
                if (p.rowsRead < BAR_AFTER_ROWS) return;
                if (p.phase === 'request')
                  bar.update(
                    undefined,
                    `${formatCell(p.rowsRead)} rows staged; matching subjects and queueing the request…`,
                    true,
                  );
                else
                  bar.update(p.totalBytes ? p.bytesDone / p.totalBytes : undefined, `${formatCell(p.rowsRead)} rows`);
              },
            });
          } catch (err) {
            bar.done();
            if (!(err instanceof CsvRejectedError)) throw err;
            if (json)
              printJson({
                file,
                rejected: true,
                stage: err.stage,
                message: err.message,
                rowsRead: err.rowsRead,
                invalidRows: err.rejected,
                errors: err.rows,
              });
            else
              info(
                `${file}: ${err.message}\n${rowErrors(err.rows)}${err.rejected > err.rows.length ? `… and ${err.rejected - err.rows.length} more\n` : ''}`,
              );
            return EXIT.usage;
          }
          bar.done();
          const final = opts.wait ? await watchRequest(lethe, report.requestId, !json) : undefined;
          if (json) printJson(final ? { file, ...report, status: final.status, request: final } : { file, ...report });
          else {
            print(renderReport(file, report));
            if (final) print(`\n${renderStatus(final)}`);
          }
          return final?.status === 'failed' ? EXIT.failure : EXIT.ok;
        });
      }),
    );
}

function rowErrors(errors: RowError[]): string {
  return errors.map((e) => `  row ${e.row}: ${e.reason}\n`).join('');
}

function renderReport(file: string, r: ImportReport): string {
  let out = keyValues([
    ['file', file],
    ['rows read', r.rowsRead],
    ['rows imported', r.rowsImported],
    ['rows rejected', r.rejected],
    ['subjects', r.subjects],
    ['matched', r.matched],
    ['unmatched', r.unmatched],
    ['duplicates', r.duplicates],
    ['request', r.requestId],
    ['status', r.status],
    ['time', `${r.seconds.toFixed(2)} s (${formatCell(r.rowsPerSecond)} rows/s)`],
  ]);
  if (r.unmatchedRows.length > 0) {
    out += `\nunmatched rows${r.unmatched > r.unmatchedRows.length ? ` (first ${r.unmatchedRows.length} of ${formatCell(r.unmatched)})` : ''}\n`;
    out += table(r.unmatchedRows, ['row', 'subjectHash'], ['row', 'subject hash']);
  }
  if (r.rejectedRows.length > 0) {
    out += `\nrejected rows${r.rejected > r.rejectedRows.length ? ` (first ${r.rejectedRows.length} of ${formatCell(r.rejected)})` : ''}\n`;
    out += table(r.rejectedRows, ['row', 'reason']);
  }
  return out;
}
