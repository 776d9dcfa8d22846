// The CSV format a privacy team uploads, following Smartico's and Optimove's rules:
//   - a header row naming the columns: the subject key (subject_key, or customer_id /
//     user_ext_id as those platforms call it), optionally the scope (scope, or Smartico's
//     core_sm_brand_id), optionally the subject kind (kind: customer, staff; one value per
//     file, since a request erases one kind) and optionally an erase flag that must be true
//     or 1 on every row;
//   - comma separated, unquoted values, one subject per line.
// Pure functions: no I/O, so the rules are unit-testable and shared by the up-front check
// of the first rows and by the streaming import.
//
// Messages never contain the values themselves: a subject key is personal data, and a
// shifted column can put an email where a flag was expected.

export const KEY_COLUMNS = ['subject_key', 'customer_id', 'user_ext_id'] as const;
export const SCOPE_COLUMNS = ['scope', 'core_sm_brand_id'] as const;
export const ERASE_COLUMNS = ['erase'] as const;
export const KIND_COLUMNS = ['kind'] as const;
/** How many data rows are checked before anything touches the database. */
export const PREVIEW_ROWS = 20;
/** Longer values are surely not identifiers (a wrong file, a pasted document). */
export const MAX_VALUE_LENGTH = 1024;

export interface CsvLayout {
  /** Number of columns every row must have. */
  width: number;
  keyIndex: number;
  scopeIndex: number | undefined;
  eraseIndex: number | undefined;
  /** The subject kind column, when the file has one. */
  kindIndex?: number;
  /** The header names as canonical roles, for reports: e.g. customer_id → subject_key. */
  columns: string[];
}

export interface RowError {
  /** Line number in the file (the header is line 1), as an editor or spreadsheet shows it. */
  row: number;
  reason: string;
}

export type HeaderResult = { ok: true; layout: CsvLayout } | { ok: false; errors: RowError[] };

const describeExpected = `expected a header with ${KEY_COLUMNS.join(' | ')}, optionally ${SCOPE_COLUMNS.join(' | ')}, ${KIND_COLUMNS.join(' | ')} and ${ERASE_COLUMNS.join(' | ')}`;

/** Reads the header row (line 1). */
export function parseHeader(fields: readonly string[] | undefined): HeaderResult {
  if (!fields || (fields.length === 1 && fields[0]!.trim() === '')) {
    return {
      ok: false,
      errors: [{ row: 1, reason: `the file is empty or its first line is blank: ${describeExpected}` }],
    };
  }
  const errors: RowError[] = [];
  const roles: string[] = [];
  let keyIndex: number | undefined;
  let scopeIndex: number | undefined;
  let eraseIndex: number | undefined;
  let kindIndex: number | undefined;
  fields.forEach((raw, i) => {
    const name = raw.trim().toLowerCase();
    const col = i + 1;
    if (raw.includes('"') || raw.includes("'")) {
      errors.push({
        row: 1,
        reason: `column ${col}: quoted header names are not allowed (write ${name.replace(/["']/g, '') || 'subject_key'} without quotes)`,
      });
      roles.push('?');
      return;
    }
    const set = (current: number | undefined, role: string): number | undefined => {
      if (current !== undefined) {
        errors.push({ row: 1, reason: `column ${col} (${name}): a ${role} column appears twice` });
        return current;
      }
      return i;
    };
    if ((KEY_COLUMNS as readonly string[]).includes(name)) {
      keyIndex = set(keyIndex, 'subject key');
      roles.push('subject_key');
    } else if ((SCOPE_COLUMNS as readonly string[]).includes(name)) {
      scopeIndex = set(scopeIndex, 'scope');
      roles.push('scope');
    } else if ((KIND_COLUMNS as readonly string[]).includes(name)) {
      kindIndex = set(kindIndex, 'kind');
      roles.push('kind');
    } else if ((ERASE_COLUMNS as readonly string[]).includes(name)) {
      eraseIndex = set(eraseIndex, 'erase flag');
      roles.push('erase');
    } else if (name === '') {
      errors.push({ row: 1, reason: `column ${col} has no name` });
      roles.push('?');
    } else {
      // A header name is not personal data, but cap it: a headerless file puts a key here.
      const shown = name.length > 40 || /[@\d]/.test(name) ? '' : ` "${name}"`;
      errors.push({
        row: 1,
        reason: `column ${col}: unknown column${shown}; ${describeExpected}${shown ? '' : ' (is the header row missing?)'}`,
      });
      roles.push('?');
    }
  });
  if (keyIndex === undefined && errors.length === 0) {
    errors.push({ row: 1, reason: `no subject key column: ${describeExpected}` });
  }
  if (errors.length > 0 || keyIndex === undefined) return { ok: false, errors };
  const layout: CsvLayout = { width: fields.length, keyIndex, scopeIndex, eraseIndex, columns: roles };
  if (kindIndex !== undefined) layout.kindIndex = kindIndex;
  return { ok: true, layout };
}

export type RowResult = { ok: true; key: string; scope: string | null; kind?: string } | { ok: false; reason: string };

/** True for a line with nothing on it (skipped, not counted as a row). */
export function isBlankLine(fields: readonly string[]): boolean {
  return fields.length === 1 && fields[0]!.trim() === '';
}

// A quote, C0 controls other than tab (which COPY escapes), DEL, and U+FFFD (what invalid
// UTF-8 decodes to). One regex test per value keeps the common path to a single scan.
// eslint-disable-next-line no-control-regex
const SUSPECT = /["\u0000-\u0008\u000a-\u001f\u007f\ufffd]/;

/** Checks one data row against the layout. Values are trimmed of surrounding spaces. */
export function checkRow(fields: readonly string[], layout: CsvLayout): RowResult {
  if (fields.length !== layout.width) {
    return {
      ok: false,
      reason: `expected ${layout.width} column${layout.width === 1 ? '' : 's'}, found ${fields.length}`,
    };
  }
  for (let i = 0; i < fields.length; i++) {
    const v = fields[i]!;
    if (SUSPECT.test(v)) {
      return {
        ok: false,
        reason: v.includes('"')
          ? `column ${i + 1}: quoted values are not allowed`
          : `column ${i + 1}: control character or invalid UTF-8`,
      };
    }
    if (v.length > MAX_VALUE_LENGTH)
      return { ok: false, reason: `column ${i + 1}: value longer than ${MAX_VALUE_LENGTH} characters` };
  }
  const key = fields[layout.keyIndex]!.trim();
  if (key === '') return { ok: false, reason: 'empty subject key' };
  let scope: string | null = null;
  if (layout.scopeIndex !== undefined) {
    scope = fields[layout.scopeIndex]!.trim();
    if (scope === '') return { ok: false, reason: 'empty scope' };
  }
  if (layout.eraseIndex !== undefined) {
    const flag = fields[layout.eraseIndex]!.trim().toLowerCase();
    if (flag !== 'true' && flag !== '1') return { ok: false, reason: 'erase flag must be true or 1' };
  }
  if (layout.kindIndex !== undefined) {
    const kind = fields[layout.kindIndex]!.trim();
    if (kind === '') return { ok: false, reason: 'empty kind' };
    return { ok: true, key, scope, kind };
  }
  return { ok: true, key, scope };
}
