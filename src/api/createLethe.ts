// The library surface: one object bound to a pool, each method one SQL function (or
// view) of the `pii` schema. Nothing here decides anything the database decides.
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { importCsv, type ImportCsvOptions, type ImportReport } from '../csv/importCsv.js';
import { type AuditFilter, type AuditRow, auditRows } from '../sql/audit.js';
import { createDb, createPool, type LetheDb, type ServerNotice } from '../sql/db.js';
import { LetheError } from '../sql/errors.js';
import { grantRole } from '../sql/grantRole.js';
import { lint, type LintProblem } from '../sql/lint.js';
import { type OverdueRequest, overdueRequests } from '../sql/overdueRequests.js';
import {
  type ColumnRule,
  type OnErase,
  type ChildTableOptions,
  type JoinOptions,
  registerChildTable,
  registerColumn,
  registerSubjectTable,
  registerTable,
} from '../sql/register.js';
import { type RegisteredColumn, registeredColumns, type RegisteredTable, registeredTables } from '../sql/registry.js';
import { requestErasure, type RequestErasureOptions } from '../sql/requestErasure.js';
import { type RequestItem, requestItems, type RequestItemsFilter } from '../sql/requestItems.js';
import { isFinished, type RequestStatus, requestStatus } from '../sql/requestStatus.js';
import { retryRequest } from '../sql/retryRequest.js';
import { type Detokenized, detokenize } from '../sql/detokenize.js';
import { type TokenizeInput, type TokenizeOptions, tokenizeMany } from '../sql/tokenizeMany.js';
import { type Residual, verifyErasure } from '../sql/verifyErasure.js';
import { type WasErased, wasErased, wasErasedHash } from '../sql/wasErased.js';
import type { KeyStore } from '../vault/keyStore.js';
import { KeyStoreVault } from '../vault/keyStoreVault.js';

export type LetheOptions = (
  | {
      connectionString: string;
      /** Recorded in pii.audit.application. Default 'lethe'. */
      applicationName?: string;
      /** Pool size. Default 4. */
      max?: number;
      /** Server NOTICEs and WARNINGs (e.g. "no index on …" when registering). */
      onNotice?: (notice: ServerNotice) => void;
    }
  | { pool: pg.Pool }
) & {
  /**
   * The vault's separate key store (docs/vault.md): tokenize and detokenize then bring the
   * data keys from it and encrypt here; the database holds key ids and ciphertext only.
   */
  keyStore?: KeyStore;
};

export interface WaitOptions {
  /** Give up after this long (LetheError 57014). Default: wait forever. */
  timeoutMs?: number;
  /** Called on every poll with the latest status. */
  onProgress?: (status: RequestStatus) => void;
  /** Poll interval ceiling in ms (polls start at 100 ms and back off). Default 1000. */
  maxIntervalMs?: number;
  signal?: AbortSignal;
}

export interface Verification {
  verified: boolean;
  residuals: Residual[];
}

export interface Lethe {
  /** Typed Kysely over the pool, for queries of your own on pii.* tables and views. */
  readonly db: LetheDb;
  readonly pool: pg.Pool;
  /** pii.request_erasure: queue a request; returns its id (the same id again for the same requestKey). */
  requestErasure(subjectKeys: readonly string[], opts?: RequestErasureOptions): Promise<string>;
  /** pii.request_status. Unknown ids: LetheError 42704. */
  getRequest(requestId: string): Promise<RequestStatus>;
  /** pii.request_items: subjects by keyed hash, CSV row, matched, status. */
  getRequestItems(requestId: string, filter?: RequestItemsFilter): Promise<RequestItem[]>;
  /** Polls pii.request_status until the request is done or failed. */
  waitForRequest(requestId: string, opts?: WaitOptions): Promise<RequestStatus>;
  /** pii.verify_erasure, live: verified when nothing is left. */
  verifyRequest(requestId: string): Promise<Verification>;
  /** pii.retry_request: re-queue a failed request's failed items. */
  retryRequest(requestId: string): Promise<void>;
  /** pii.was_erased (from the keyed hash; the key is not kept). */
  wasErased(subjectKey: string, scope?: string, kind?: string): Promise<WasErased>;
  /** pii.was_erased_hash: from a hash shown in a report. */
  wasErasedHash(subjectHash: string): Promise<WasErased>;
  /** Streams a CSV (path or stream) into one request; see docs/csv.md. */
  importCsv(source: string | Readable, opts?: ImportCsvOptions): Promise<ImportReport>;
  /** The view pii.overdue_requests. */
  overdueRequests(): Promise<OverdueRequest[]>;
  /**
   * pii.tokenize_many (pii_operator): one token per input, in order; NULL for a tombstoned subject.
   * With a keyStore: pii.vault_key_ids, the store's keys, AES here, pii.store_tokens.
   */
  tokenize(inputs: readonly TokenizeInput[], opts?: TokenizeOptions): Promise<(string | null)[]>;
  /**
   * pii.detokenize (pii_dispatcher): one result per token, in order; one audit row per call.
   * With a keyStore: pii.detokenize_ciphertexts, the store's keys, AES here.
   */
  detokenize(tokens: readonly string[], purpose: string, client?: string): Promise<Detokenized[]>;
  /** With a keyStore: has it destroy the data keys of erased subjects (the worker does it every minute); returns how many. */
  shredErasedKeys(): Promise<number>;
  registry: {
    tables(): Promise<RegisteredTable[]>;
    columns(table?: string): Promise<RegisteredColumn[]>;
    lint(): Promise<LintProblem[]>;
    registerSubjectTable(
      table: string,
      keyColumn: string,
      opts?: { scopeColumn?: string; keyIsPii?: boolean },
    ): Promise<void>;
    registerTable(
      table: string,
      subjectColumn: string,
      onErase: OnErase,
      opts?: JoinOptions & { scopeColumn?: string },
    ): Promise<void>;
    /** fkColumn undefined: the join is taken from the one foreign key between the tables. */
    registerChildTable(
      table: string,
      parent: string,
      fkColumn: string | undefined,
      opts?: ChildTableOptions,
    ): Promise<void>;
    registerColumn(table: string, column: string, rule: ColumnRule): Promise<void>;
    /** pii.grant_role: make a login role a member of pii_operator, pii_auditor, … */
    grantRole(groupRole: string, loginRole: string): Promise<void>;
  };
  audit: {
    /** pii.audit, newest first. */
    rows(filter?: AuditFilter): Promise<AuditRow[]>;
  };
  /** Ends the pool if createLethe made it. */
  close(): Promise<void>;
}

export function createLethe(opts: LetheOptions): Lethe {
  const ownPool = !('pool' in opts);
  const pool =
    'pool' in opts
      ? opts.pool
      : createPool(
          {
            connectionString: opts.connectionString,
            application_name: opts.applicationName ?? 'lethe',
            max: opts.max ?? 4,
          },
          opts.onNotice,
        );
  const db = createDb(pool);
  const keyStoreVault = opts.keyStore && new KeyStoreVault(db, opts.keyStore);
  let closed: Promise<void> | undefined;

  return {
    db,
    pool,
    requestErasure: (keys, o) => requestErasure(db, keys, o),
    getRequest: (id) => requestStatus(db, id),
    getRequestItems: (id, f) => requestItems(db, id, f),
    waitForRequest: (id, o) => waitForRequest(db, id, o),
    verifyRequest: async (id) => {
      const residuals = await verifyErasure(db, id);
      return { verified: residuals.length === 0, residuals };
    },
    retryRequest: (id) => retryRequest(db, id),
    wasErased: (key, scope, kind) => wasErased(db, key, scope, kind),
    wasErasedHash: (hash) => wasErasedHash(db, hash),
    importCsv: (source, o) => importCsv(pool, source, o),
    overdueRequests: () => overdueRequests(db),
    tokenize: (inputs, o) => (keyStoreVault ? keyStoreVault.tokenize(inputs, o) : tokenizeMany(db, inputs, o)),
    detokenize: (tokens, purpose, client) =>
      keyStoreVault ? keyStoreVault.detokenize(tokens, purpose, client) : detokenize(db, tokens, purpose, client),
    shredErasedKeys: async () => {
      if (!keyStoreVault) throw new LetheError('no keyStore was given to createLethe', '55000');
      return keyStoreVault.shredErasedKeys();
    },
    registry: {
      tables: () => registeredTables(db),
      columns: (t) => registeredColumns(db, t),
      lint: () => lint(db),
      registerSubjectTable: (t, k, o) => registerSubjectTable(db, t, k, o),
      registerTable: (t, s, e, o) => registerTable(db, t, s, e, o),
      registerChildTable: (t, p, f, o) => registerChildTable(db, t, p, f, o),
      registerColumn: (t, c, r) => registerColumn(db, t, c, r),
      grantRole: (g, l) => grantRole(db, g, l),
    },
    audit: { rows: (f) => auditRows(db, f) },
    close: () => (closed ??= ownPool ? pool.end() : Promise.resolve()),
  };
}

async function waitForRequest(db: LetheDb, requestId: string, opts: WaitOptions = {}): Promise<RequestStatus> {
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  let interval = 100;
  for (;;) {
    const status = await requestStatus(db, requestId);
    opts.onProgress?.(status);
    if (isFinished(status.status)) return status;
    if (opts.signal?.aborted)
      throw new LetheError(`stopped waiting for request ${requestId}`, '57014', { cause: opts.signal.reason });
    if (Date.now() + interval > deadline) {
      throw new LetheError(
        `request ${requestId} is still ${status.status} after ${opts.timeoutMs} ms (${Math.round(status.progress * 100)}% done); is a worker running?`,
        '57014',
        { hint: 'Start one with `lethe worker` or runWorker().' },
      );
    }
    await new Promise((r) => setTimeout(r, interval));
    interval = Math.min(interval * 2, opts.maxIntervalMs ?? 1000);
  }
}
