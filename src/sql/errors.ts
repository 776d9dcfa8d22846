// One error type for everything that comes back from PostgreSQL, so callers can branch
// on the SQLSTATE (`err.code === '42501'`) instead of parsing driver-specific objects.

/** SQLSTATEs Lethe's functions raise, by meaning. See the PostgreSQL "Error Codes" appendix. */
export const SqlState = {
  invalidParameter: '22023',
  invalidText: '22P02',
  nullValue: '22004',
  insufficientPrivilege: '42501',
  undefinedObject: '42704',
  objectNotInPrerequisiteState: '55000',
  programLimitExceeded: '54000',
  connectionFailure: '08006',
  unableToConnect: '08001',
} as const;

export class LetheError extends Error {
  override readonly name = 'LetheError';
  /** SQLSTATE (five characters) from the server, or 08001 when no connection could be made. */
  readonly code: string;
  /** The server's HINT, when it gave one (Lethe's functions often say what to do). */
  readonly hint: string | undefined;
  /**
   * The server's DETAIL. Kept for programs, never printed by the CLI: PostgreSQL's own
   * details can quote row values (e.g. unique violations), which may be personal data.
   */
  readonly detail: string | undefined;

  constructor(message: string, code: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }

  /** Invalid input from the caller (SQLSTATE class 22, or a limit), as opposed to a failure. */
  get isBadInput(): boolean {
    return this.code.startsWith('22') || this.code === SqlState.programLimitExceeded;
  }
}

/**
 * Whether a server error was raised by code other than Lethe's own RAISE: an
 * application's trigger, a domain check or a constraint fired by a statement Lethe ran.
 * Such a message can quote anything (a RAISE naming a customer and their email), so it is
 * withheld. Errors in the caller's own statement (no context) and Lethe's RAISEs (which
 * never quote values) pass unchanged. A function's name in the context is unqualified
 * when its schema was on the search_path (pii inside Lethe's functions), so: the error is
 * Lethe's when it was raised by a RAISE and every function on the way is Lethe's or
 * unqualified, and no table owner's deputy (pii_internal.deputy_<oid>, through which all
 * application code runs) is among them.
 */
function raisedOutsideLethe(where: string | undefined): boolean {
  if (!where) return false;
  const lines = where.split('\n');
  if (!/ line \d+ at RAISE$/.test(lines[0] ?? '')) return true;
  return lines.some((line) => {
    const fn = /^(?:PL\/pgSQL|SQL) function "?(?:(\w+)\.)?(\w+)/.exec(line);
    return (
      fn !== null &&
      ((fn[1] !== undefined && fn[1] !== 'pii' && fn[1] !== 'pii_internal') || fn[2]!.startsWith('deputy_'))
    );
  });
}

/** What a withheld error still says: its SQLSTATE and the objects it names. */
function withheldMessage(e: {
  code: string;
  schema?: string;
  table?: string;
  constraint?: string;
  column?: string;
}): string {
  const objects = [
    e.table ? `table ${e.schema ? `${e.schema}.` : ''}${e.table}` : undefined,
    e.column ? `column ${e.column}` : undefined,
    e.constraint ? `constraint ${e.constraint}` : undefined,
  ].filter(Boolean);
  return `database error SQLSTATE ${e.code}${objects.length ? ` (${objects.join(', ')})` : ''}: raised by code outside Lethe, its text is withheld (it can quote personal data)`;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN']);

/** Converts a pg DatabaseError (or a connection error) into a LetheError; anything else is returned as is. */
export function toLetheError(err: unknown): unknown {
  if (err instanceof LetheError || !(err instanceof Error)) return err;
  const e = err as Error & {
    code?: unknown;
    hint?: string;
    detail?: string;
    severity?: string;
    where?: string;
    schema?: string;
    table?: string;
    column?: string;
    constraint?: string;
  };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
    // No cause either: the driver's error carries the text.
    if (raisedOutsideLethe(e.where)) return new LetheError(withheldMessage({ ...e, code: e.code }), e.code);
    return new LetheError(e.message, e.code, { hint: e.hint, detail: e.detail, cause: err });
  }
  if (typeof e.code === 'string' && CONNECT_ERRORS.has(e.code)) {
    return new LetheError(`cannot connect to PostgreSQL: ${e.message}`, SqlState.unableToConnect, { cause: err });
  }
  // AggregateError from net.connect trying several addresses (localhost -> ::1 and 127.0.0.1).
  if (
    err instanceof AggregateError &&
    err.errors.some((x) => CONNECT_ERRORS.has((x as { code?: string }).code ?? ''))
  ) {
    return new LetheError(
      `cannot connect to PostgreSQL: ${err.errors.map((x) => (x as Error).message).join('; ')}`,
      SqlState.unableToConnect,
      { cause: err },
    );
  }
  return err;
}

/** Runs fn and rethrows database errors as LetheError. */
export async function sqlCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toLetheError(err);
  }
}
