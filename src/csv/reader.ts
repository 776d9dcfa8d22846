// Reads a CSV file as records numbered by line. Quoting is switched off on purpose: the
// format forbids quoted values, so a quote is an ordinary character that checkRow
// rejects, and every record is exactly one line (line number = record number).
import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { parse, type Parser } from 'csv-parse';

export interface CsvRecord {
  line: number;
  fields: string[];
}

export interface CsvSource {
  records: AsyncIterator<CsvRecord, undefined>;
  /** Bytes consumed so far (files only). */
  bytesRead(): number | undefined;
  /** File size, when the source is a file. */
  totalBytes: number | undefined;
  close(): void;
}

/** A line longer than this is not a list of identifiers (binary file, no line breaks). */
export const MAX_LINE_BYTES = 64 * 1024;

export class CsvSyntaxError extends Error {
  override readonly name = 'CsvSyntaxError';
  constructor(
    message: string,
    readonly line: number | undefined,
  ) {
    super(message);
  }
}

export async function openCsv(source: string | Readable): Promise<CsvSource> {
  let input: Readable;
  let totalBytes: number | undefined;
  if (typeof source === 'string') {
    totalBytes = (await stat(source)).size; // also fails early (ENOENT) before any stream exists
    input = createReadStream(source, { highWaterMark: 1 << 20 });
  } else {
    input = source;
  }
  const parser: Parser = parse({
    delimiter: ',',
    quote: false,
    bom: true,
    relax_column_count: true,
    skip_empty_lines: false,
    max_record_size: MAX_LINE_BYTES,
  });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);

  const it = parser[Symbol.asyncIterator]() as AsyncIterator<string[]>;
  let line = 0;
  const records: AsyncIterator<CsvRecord, undefined> = {
    async next() {
      let r: IteratorResult<string[]>;
      try {
        r = await it.next();
      } catch (err) {
        throw toSyntaxError(err, line + 1);
      }
      if (r.done) return { done: true, value: undefined };
      line++;
      return { done: false, value: { line, fields: r.value } };
    },
  };
  return {
    records,
    bytesRead: () => (input as Partial<ReadStream>).bytesRead,
    totalBytes,
    close: () => {
      input.unpipe(parser);
      input.destroy();
      parser.destroy();
    },
  };
}

function toSyntaxError(err: unknown, line: number): Error {
  const e = err as { code?: string; message?: string; lines?: number };
  if (typeof e.code === 'string' && e.code.startsWith('CSV_')) {
    const at = typeof e.lines === 'number' ? e.lines : line;
    const reason = e.code === 'CSV_MAX_RECORD_SIZE' ? `line longer than ${MAX_LINE_BYTES} bytes (is this a CSV file?)` : e.code;
    return new CsvSyntaxError(`row ${at}: ${reason}`, at);
  }
  return err instanceof Error ? err : new Error(String(err));
}
