// Reading a CSV in two steps over one input, files and pipes alike:
//   peekHead   reads the first lines, parses them (csv-parse, sync) for the up-front check,
//              and puts the bytes back so the second step sees the whole file;
//   parseToChunks parses everything (csv-parse, streaming), handing each record with its
//              line number to a synchronous callback.
// Quoting is switched off on purpose: the format forbids quoted values, so a quote is an
// ordinary character that checkRow rejects, and every record is exactly one line.
// Rows are handled in a synchronous 'data' listener and leave as 256 KiB chunks: a stream
// hop or an awaited promise per row, or csv-parse's on_record, cost more than the parsing.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { parse, type Options } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';

export interface CsvRecord {
  line: number;
  fields: string[];
}

/** A line longer than this is not a list of identifiers (binary file, no line breaks). */
export const MAX_LINE_BYTES = 64 * 1024;

const PARSE_OPTIONS: Options = {
  delimiter: ',',
  quote: false,
  bom: true,
  relax_column_count: true,
  skip_empty_lines: false,
  max_record_size: MAX_LINE_BYTES,
};

export class CsvSyntaxError extends Error {
  override readonly name = 'CsvSyntaxError';
  constructor(
    readonly reason: string,
    readonly line: number,
  ) {
    super(`row ${line}: ${reason}`);
  }
}

export interface CsvInput {
  stream: Readable;
  /** File size, when the source is a file. */
  totalBytes: number | undefined;
}

export async function openInput(source: string | Readable): Promise<CsvInput> {
  let stream: Readable;
  let totalBytes: number | undefined;
  if (typeof source === 'string') {
    totalBytes = (await stat(source)).size; // fails early (ENOENT) before any stream exists
    stream = createReadStream(source, { highWaterMark: 1 << 20 });
  } else {
    stream = source;
  }
  return { stream, totalBytes };
}

const HEAD_LINES = 200;
const HEAD_BYTES = 1 << 20;

/**
 * Reads at least the first HEAD_LINES lines (or 1 MiB, or the whole input), parses them,
 * and returns the records up to the header plus `dataRows` non-blank rows. The input is
 * left (or replaced) so that reading it again starts at byte 0.
 */
export async function peekHead(
  input: CsvInput,
  dataRows: number,
  isBlank: (f: string[]) => boolean,
): Promise<CsvRecord[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  let newlines = 0;
  const ended = await new Promise<boolean>((resolve, reject) => {
    const s = input.stream;
    const cleanup = () => {
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('error', onError);
    };
    const onReadable = () => {
      let c: Buffer | string | null;
      while ((c = s.read() as Buffer | string | null) !== null) {
        const b = typeof c === 'string' ? Buffer.from(c) : c;
        chunks.push(b);
        size += b.length;
        for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) newlines++;
        if (newlines >= HEAD_LINES || size >= HEAD_BYTES) {
          cleanup();
          resolve(false);
          return;
        }
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(true);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    s.on('readable', onReadable);
    s.once('end', onEnd);
    s.once('error', onError);
  });
  const head = Buffer.concat(chunks);
  // Give the bytes back: unshift while the stream is open; after 'end' it refuses, so
  // the whole (small) input is the head and a fresh stream replays it.
  if (ended) input.stream = Readable.from([head]);
  else if (head.length > 0) input.stream.unshift(head);

  const complete = ended ? head : head.subarray(0, head.lastIndexOf(10) + 1);
  let rows: string[][];
  try {
    rows = complete.length > 0 ? (parseSync(complete, PARSE_OPTIONS) as string[][]) : [];
  } catch (err) {
    throw toSyntaxError(err, 1);
  }
  if (!ended && complete.length === 0 && head.length > 0) {
    // 1 MiB without a line break.
    throw new CsvSyntaxError(`line longer than ${MAX_LINE_BYTES} bytes (is this a CSV file?)`, 1);
  }
  const out: CsvRecord[] = [];
  let data = 0;
  for (let i = 0; i < rows.length && data < dataRows; i++) {
    out.push({ line: i + 1, fields: rows[i]! });
    if (i > 0 && !isBlank(rows[i]!)) data++;
  }
  return out;
}

/**
 * Parses the whole input (csv-parse, streaming) into a byte stream of whatever onRecord
 * returns: it gets every record (header included) with its line number and returns a
 * chunk to emit or null; onEnd returns the last chunk. Backpressure from the consumer
 * pauses the parser (and so the file).
 */
export function parseToChunks(
  input: CsvInput,
  onRecord: (fields: string[], line: number) => string | null,
  onEnd: () => string | null,
): { source: Readable; lastLine: () => number } {
  let line = 0;
  const parser = parse(PARSE_OPTIONS);
  const source = new Readable({
    read: () => void parser.resume(),
    destroy: (err, cb) => {
      input.stream.unpipe(parser);
      parser.destroy();
      input.stream.destroy();
      cb(err);
    },
  });
  parser.on('data', (fields: string[]) => {
    let out: string | null;
    try {
      out = onRecord(fields, ++line);
    } catch (err) {
      source.destroy(err as Error);
      return;
    }
    if (out !== null && !source.push(out)) parser.pause();
  });
  parser.on('end', () => {
    const last = onEnd();
    if (last) source.push(last);
    source.push(null);
  });
  parser.on('error', (err) => source.destroy(toSyntaxError(err, line + 1)));
  input.stream.on('error', (err) => source.destroy(err));
  input.stream.pipe(parser);
  return { source, lastLine: () => line };
}

/** csv-parse's own errors (line too long, …) as a CsvSyntaxError naming the line; others unchanged. */
export function toSyntaxError(err: unknown, line: number): Error {
  const e = err as { code?: string; lines?: number };
  if (typeof e.code === 'string' && e.code.startsWith('CSV_')) {
    const at = typeof e.lines === 'number' ? e.lines : line;
    const reason =
      e.code === 'CSV_MAX_RECORD_SIZE' ? `line longer than ${MAX_LINE_BYTES} bytes (is this a CSV file?)` : e.code;
    return new CsvSyntaxError(reason, at);
  }
  return err instanceof Error ? err : new Error(String(err));
}
