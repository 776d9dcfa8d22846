// The up-front check of a CSV: its header and first PREVIEW_ROWS data rows, each with its
// line number and what is wrong with it. Shared by importCsv (which refuses a bad file
// before touching the database) and the admin's upload page (which shows it).
import { checkRow, type HeaderResult, isBlankLine, parseHeader, PREVIEW_ROWS, type RowError } from './format.js';
import { type CsvInput, CsvSyntaxError, peekHead } from './reader.js';

export interface HeadCheck {
  /** A line csv-parse could not read (too long, …); nothing else is checked then. */
  syntaxError: RowError | undefined;
  header: HeaderResult;
  /** The first data rows (blank lines skipped): reason is null for a valid row. */
  rows: Array<{ row: number; reason: string | null }>;
}

/** Reads the head of the input and puts it back: importing afterwards starts at byte 0. */
export async function checkHead(input: CsvInput): Promise<HeadCheck> {
  let head;
  try {
    head = await peekHead(input, PREVIEW_ROWS, isBlankLine);
  } catch (err) {
    if (!(err instanceof CsvSyntaxError)) throw err;
    return { syntaxError: { row: err.line, reason: err.reason }, header: { ok: false, errors: [] }, rows: [] };
  }
  const header = parseHeader(head[0]?.fields);
  if (!header.ok) return { syntaxError: undefined, header, rows: [] };
  const rows = head
    .slice(1)
    .filter((rec) => !isBlankLine(rec.fields))
    .map((rec) => {
      const r = checkRow(rec.fields, header.layout);
      return { row: rec.line, reason: r.ok ? null : r.reason };
    });
  return { syntaxError: undefined, header, rows };
}

/** The invalid rows of a head check. */
export function headErrors(check: HeadCheck): RowError[] {
  return check.rows.filter((r) => r.reason !== null).map((r) => ({ row: r.row, reason: r.reason! }));
}
