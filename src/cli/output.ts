// Human output (aligned tables, key/value blocks) and --json output, both on stdout.
// Diagnostics and progress go to stderr so stdout stays parseable.

export type Cell = string | number | boolean | Date | null | undefined;

export function formatCell(v: Cell): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date)
    return v
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d{3}Z$/, 'Z');
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(v);
  return String(v);
}

/** An aligned table with a header row; numbers right-aligned. */
export function table<T extends object>(
  input: readonly T[],
  columns: ReadonlyArray<keyof T & string>,
  headers?: ReadonlyArray<string>,
): string {
  const rows = input as unknown as ReadonlyArray<Record<string, Cell>>;
  const head = headers ?? columns;
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => r[c] == null || typeof r[c] === 'number'));
  const widths = columns.map((_, i) => Math.max(head[i]!.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line([...head]), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

/** "label   value" lines, labels aligned. */
export function keyValues(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${formatCell(v)}`.trimEnd()).join('\n') + '\n';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function print(text: string): void {
  process.stdout.write(text);
}

export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction >= 1 || fraction === 0 ? 0 : 1)}%`;
}

/** A "label" line, then one indented line per table with its row count, tables sorted. */
export function tableCounts(label: string, counts: Readonly<Record<string, number>>): string {
  const tables = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  return keyValues([[label, null], ...tables.map(([t, n]) => [`  ${t}`, n] as const)]);
}
