// The external copy of pii.erasure_ledger: a directory of JSON-lines files, one per UTC day
// of writing (erasure-ledger-YYYY-MM-DD.jsonl), only ever appended to and fsynced. The
// cursor is the last complete line of the newest file, so an entry is written once even
// when a worker dies between writing and recording its progress.
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const FILE = /^erasure-ledger-\d{4}-\d\d-\d\d\.jsonl$/;
/** A line is about 500 bytes; the tail read looks back this far for the last one. */
const TAIL_BYTES = 64 * 1024;

export interface LedgerCursor {
  /** Sequence number of the last entry in the directory (0: empty). */
  seq: number;
  entryHash: string | null;
}

export function ledgerFileName(at: Date): string {
  return `erasure-ledger-${at.toISOString().slice(0, 10)}.jsonl`;
}

export async function ledgerFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => FILE.test(f)).sort();
}

/** Creates the directory if needed and proves it writable (fails loudly at start, not at the first erasure). */
export async function openLedgerDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const probe = await open(join(dir, '.lethe-write-test'), 'w');
  await probe.close();
}

/**
 * The last complete entry in the directory. A line cut short by a crash (no newline) is
 * cut off, so the next append starts on a clean line.
 */
export async function readLedgerCursor(dir: string): Promise<LedgerCursor> {
  const files = await ledgerFiles(dir);
  for (let i = files.length - 1; i >= 0; i--) {
    const fh = await open(join(dir, files[i]!), 'r+');
    try {
      const { size } = await fh.stat();
      if (size === 0) continue;
      const start = Math.max(0, size - TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const text = buf.toString('utf8');
      const end = text.lastIndexOf('\n');
      if (end + 1 < text.length) {
        await fh.truncate(start + Buffer.byteLength(text.slice(0, end + 1)));
        await fh.sync();
      }
      if (end < 0) continue;
      const line = text.slice(text.lastIndexOf('\n', end - 1) + 1, end);
      const entry = JSON.parse(line) as { seq: number; entry_hash: string };
      return { seq: entry.seq, entryHash: entry.entry_hash };
    } finally {
      await fh.close();
    }
  }
  return { seq: 0, entryHash: null };
}

/** Appends lines to today's file and fsyncs it (and the directory when the file is new). */
export async function appendLedgerLines(dir: string, lines: string[], now = new Date()): Promise<void> {
  const name = ledgerFileName(now);
  const isNew = !(await ledgerFiles(dir)).includes(name);
  const fh = await open(join(dir, name), 'a');
  try {
    await fh.write(lines.map((l) => `${l}\n`).join(''));
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (isNew) {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}

/** Every complete entry in the directory, in file and line order, as parsed JSON. */
export async function readLedgerEntries(dir: string): Promise<unknown[]> {
  const entries: unknown[] = [];
  for (const f of await ledgerFiles(dir)) {
    const text = await readFile(join(dir, f), 'utf8');
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    complete.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        entries.push(JSON.parse(line));
      } catch {
        throw new Error(`${join(dir, f)} line ${i + 1} is not a JSON ledger entry`);
      }
    });
  }
  return entries;
}
