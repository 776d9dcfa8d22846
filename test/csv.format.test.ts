// The CSV rules on their own (no database): header names and aliases, and every way a row
// can be wrong. Messages carry row numbers and reasons, never the values.
import { describe, expect, it } from 'vitest';
import { checkRow, type CsvLayout, isBlankLine, parseHeader } from '../src/csv/format.js';
import { copyText, encodeCopyRow } from '../src/sql/copyImportRows.js';

function layout(fields: string[]): CsvLayout {
  const h = parseHeader(fields);
  if (!h.ok) throw new Error(JSON.stringify(h.errors));
  return h.layout;
}

describe('header', () => {
  it.each([
    [['subject_key'], 0, undefined, undefined],
    [['customer_id'], 0, undefined, undefined],
    [['user_ext_id', 'core_sm_brand_id'], 0, 1, undefined],
    [['scope', 'subject_key', 'erase'], 1, 0, 2],
    [[' Customer_ID ', 'ERASE'], 0, undefined, 1],
  ])('accepts %j', (fields, key, scope, erase) => {
    expect(layout(fields)).toMatchObject({ width: fields.length, keyIndex: key, scopeIndex: scope, eraseIndex: erase });
  });

  it.each([
    [[''], /empty or its first line is blank/],
    [['email'], /column 1: unknown column "email"; expected a header with subject_key \| customer_id \| user_ext_id/],
    [['42'], /column 1: unknown column; .*header row missing/],
    [['jane@example.com'], /column 1: unknown column; .*header row missing/],
    [['"subject_key"'], /column 1: quoted header names are not allowed/],
    [['subject_key', 'customer_id'], /column 2 \(customer_id\): a subject key column appears twice/],
    [['scope', 'erase'], /no subject key column/],
    [['subject_key', ''], /column 2 has no name/],
    [['subject_key', 'scope', 'core_sm_brand_id'], /a scope column appears twice/],
  ])('rejects %j', (fields, reason) => {
    const h = parseHeader(fields);
    expect(h.ok).toBe(false);
    if (!h.ok) {
      expect(h.errors[0]).toMatchObject({ row: 1, reason: expect.stringMatching(reason) });
      // The rejected name of a headerless file may be a key: never echoed.
      expect(JSON.stringify(h.errors)).not.toContain('jane@example.com');
    }
  });

  it('rejects a missing header (the file starts with data)', () => {
    expect(parseHeader(undefined)).toMatchObject({ ok: false, errors: [{ row: 1 }] });
  });
});

describe('rows', () => {
  const plain = layout(['subject_key']);
  const full = layout(['customer_id', 'core_sm_brand_id', 'erase']);

  it('accepts valid rows, trimming spaces', () => {
    expect(checkRow(['42'], plain)).toEqual({ ok: true, key: '42', scope: null });
    expect(checkRow([' 42 ', ' 2', 'TRUE'], full)).toEqual({ ok: true, key: '42', scope: '2' });
    expect(checkRow(['a@b.example', '1', '1'], full)).toEqual({ ok: true, key: 'a@b.example', scope: '1' });
  });

  it.each([
    [['42', '7'], plain, 'expected 1 column, found 2'],
    [['42'], full, 'expected 3 columns, found 1'],
    [['"42"'], plain, 'column 1: quoted values are not allowed'],
    [['4"2'], plain, 'column 1: quoted values are not allowed'],
    [[''], plain, 'empty subject key'],
    [['   '], plain, 'empty subject key'],
    [['42', '', 'true'], full, 'empty scope'],
    [['42', '1', 'false'], full, 'erase flag must be true or 1'],
    [['42', '1', '0'], full, 'erase flag must be true or 1'],
    [['42', '1', ''], full, 'erase flag must be true or 1'],
    [['42', '1', 'yes'], full, 'erase flag must be true or 1'],
    [['4\u00002'], plain, 'column 1: control character or invalid UTF-8'],
    [['4\ufffd2'], plain, 'column 1: control character or invalid UTF-8'],
    [['x'.repeat(1025)], plain, 'column 1: value longer than 1024 characters'],
  ])('rejects %j', (fields, l, reason) => {
    expect(checkRow(fields, l)).toEqual({ ok: false, reason });
  });

  it('treats an empty line as blank, not as a row', () => {
    expect(isBlankLine([''])).toBe(true);
    expect(isBlankLine(['  '])).toBe(true);
    expect(isBlankLine(['', ''])).toBe(false);
  });
});

describe('COPY encoding', () => {
  it('escapes what COPY text format needs and nothing else', () => {
    expect(copyText('42')).toBe('42');
    expect(copyText(null)).toBe('\\N');
    expect(copyText('a\\b\tc')).toBe('a\\\\b\\tc');
    expect(encodeCopyRow('00000000-0000-4000-8000-000000000000', 7, 'k', null)).toBe(
      '00000000-0000-4000-8000-000000000000\t7\tk\t\\N\n',
    );
  });
});
