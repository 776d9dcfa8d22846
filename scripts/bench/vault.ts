// Item 8: the tokenized vault. (a) pii.tokenize_many of the customers' emails in one
// statement (values/s; rolled back, then once committed for what follows), alternating with
// its floor: the same values tokenized by the one hand-written statement (below) into two
// tables of the vault's columns and indexes; (b) detokenize
// of 10,000 tokens against the lookup-only join on the same rows (the same unnest and
// index probes into the entries and the data keys, in request order; no decryption, no
// audit row), alternating; (c) the PII API's bulk lookup
// (1,000 tokens a request) over real HTTP, p50/p95 and tokens/s; (d) what crypto-shredding
// adds to the bulk erasure: pii.erase_subjects of the bulk subjects, every one with vault
// entries, with the shredding triggers and without them (disabled inside the rolled-back
// transaction), alternating.
import type pg from 'pg';
import { createDb, createPool } from '../../src/sql/db.js';
import { createApiKey } from '../../src/sql/createApiKey.js';
import { buildPiiApi } from '../../src/piiApi/server.js';
import { median, quantile, roundOrder, timed } from './stats.js';

export interface VaultResult {
  tokenized: number;
  tokenizeSeconds: number[];
  tokenizeMedian: number;
  tokenizeFloor: number[];
  tokenizeFloorMedian: number;
  detokenizeTokens: number;
  detokenize: number[];
  lookupFloor: number[];
  detokenizeMedian: number;
  lookupFloorMedian: number;
  http: { requests: number; tokensPerRequest: number; p50: number; p95: number; tokensPerSecond: number };
  shredSubjects: number;
  withShredding: number[];
  withoutShredding: number[];
  withShreddingMedian: number;
  withoutShreddingMedian: number;
}

// c.id, not id: "order by id" would sort by the output column (id::text), pairing the
// keys ('1', '10', '100', ...) with the emails of other customers. Both statements below
// take these arrays.
const KEYS_SQL = `array(select c.id::text from crm.customers as c where c.email is not null order by c.id limit $1)`;
const EMAILS_SQL = `array(select email from crm.customers where email is not null order by id limit $1)`;
const TOKENIZE_SQL = `select count(*) from pii.tokenize_many(
  ${KEYS_SQL},
  array_fill('email'::text, array[least($1, (select count(*) from crm.customers where email is not null))::int]),
  ${EMAILS_SQL})`;

// The floor: what one would write by hand in one statement, with pgcrypto as the vault
// uses it. A keyed subject hash (HMAC-SHA256) per value, a random data key per distinct
// subject wrapped under a KEK, a random 128-bit token that is also the IV, the value
// encrypted with AES-CBC under its subject's key; keys and entries inserted. None of the
// vault's checks: no tombstone probe, no kinds, no existing keys, no keyed tag, no audit.
// The tables are created in the rolled-back transaction (empty each round, as the vault
// is); crypto is the (quoted) schema pgcrypto is installed in.
const TOKENIZE_FLOOR_TABLES = `
  create schema if not exists bench;
  create table bench.floor_keys (subject_hash bytea primary key, wrapped_key bytea not null);
  create table bench.floor_entries (token text primary key, subject_hash bytea not null, kind text not null,
                                    ciphertext bytea not null);
  create index on bench.floor_entries (subject_hash)`;
function tokenizeFloorSql(crypto: string): string {
  return `with v as materialized (
    select v.k, v.kind, v.v, ${crypto}.hmac(convert_to(v.k, 'UTF8'), (select ${crypto}.gen_random_bytes(32)), 'sha256') as h
    from (select unnest(${KEYS_SQL}) as k, 'email'::text as kind, unnest(${EMAILS_SQL}) as v) v),
  dk as materialized (select d.h, ${crypto}.gen_random_bytes(32) as dk from (select distinct h from v) d),
  kek as (select ${crypto}.gen_random_bytes(32) as kek),
  stored as (insert into bench.floor_keys select dk.h, ${crypto}.encrypt(dk.dk, (select kek from kek), 'aes') from dk),
  entries as (
    insert into bench.floor_entries
    select 'tok_' || encode(x.iv, 'hex'), x.h, x.kind, x.iv || ${crypto}.encrypt_iv(convert_to(x.v, 'UTF8'), x.dk, x.iv, 'aes-cbc/pad:pkcs')
    from (select v.h, v.kind, v.v, dk.dk, ${crypto}.gen_random_bytes(16) as iv from v join dk on dk.h = v.h offset 0) x
    returning 1)
  select count(*) from entries`;
}

export async function benchVault(
  db: pg.Client,
  url: string,
  opts: { values: number; bulk: readonly string[]; pairs: number; httpRequests: number; log: (s: string) => void },
): Promise<VaultResult> {
  const { log } = opts;
  const tokenizeSeconds: number[] = [];
  const tokenizeFloor: number[] = [];
  const { rows: ext } = await db.query<{ schema: string }>(
    `select quote_ident(n.nspname) as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pgcrypto'`,
  );
  const floorSql = tokenizeFloorSql(ext[0]!.schema);
  for (let r = 0; r < opts.pairs; r++) {
    for (const side of roundOrder(['lethe', 'floor'] as const, r)) {
      await db.query('begin');
      if (side === 'floor') await db.query(TOKENIZE_FLOOR_TABLES);
      const { seconds } = await timed(() => db.query(side === 'lethe' ? TOKENIZE_SQL : floorSql, [opts.values]));
      await db.query('rollback');
      (side === 'lethe' ? tokenizeSeconds : tokenizeFloor).push(seconds);
      // The rolled-back rows are dead tuples in the tables and their indexes: vacuumed, so
      // that every round starts from the same vault (otherwise each inserts beside the dead
      // entries of all rounds before it).
      if (side === 'lethe') await db.query('vacuum pii_internal.vault_entries, pii_internal.vault_keys');
    }
  }
  const committed = await timed(() => db.query(TOKENIZE_SQL, [opts.values]));
  tokenizeSeconds.push(committed.seconds);
  const tokenized = Number(committed.value.rows[0].count);
  // The bulk subjects' phones too, so that every subject the erasure shreds has entries.
  await db.query(
    `select count(*) from pii.tokenize_many($1::text[], array_fill('phone'::text, array[cardinality($1::text[])]),
            array(select coalesce(c.phone, '+0') from unnest($1::text[]) with ordinality u (k, i) join crm.customers c on c.id = u.k::bigint order by u.i))`,
    [opts.bulk],
  );
  await db.query('analyze pii_internal.vault_entries, pii_internal.vault_keys');
  log(
    `  tokenize_many: ${tokenized} values, median ${median(tokenizeSeconds).toFixed(2)} s (floor ${median(tokenizeFloor).toFixed(2)} s)`,
  );

  const sample = (
    await db.query<{ token: string }>(`select token from pii_internal.vault_entries order by md5(token) limit 10000`)
  ).rows.map((r) => r.token);
  const detokenize: number[] = [];
  const lookupFloor: number[] = [];
  const sides = {
    lethe: () => db.query(`select count(value) from pii.detokenize($1::text[], 'bench')`, [sample]),
    floor: () =>
      db.query(
        // Both columns counted: a join whose columns nobody reads is removed by the planner
        // (the data key lookup was, before), and OFFSET 0 keeps the sort. The tokens come
        // through a sub-select, probed in token order, as in pii.detokenize: the same index probes.
        `select count(x.ciphertext) + count(x.wrapped_key) from (
           select e.kind, e.ciphertext, k.wrapped_key from (select u.t, u.i from unnest((select $1::text[])) with ordinality u (t, i)
                                                             order by u.t collate "C" offset 0) u
           left join pii_internal.vault_entries e on e.token = u.t
           left join pii_internal.vault_keys k on k.subject_hash = e.subject_hash order by u.i offset 0) x`,
        [sample],
      ),
  };
  await sides.lethe();
  await sides.floor();
  for (let r = 0; r < Math.max(opts.pairs, 5); r++) {
    for (const side of roundOrder(['lethe', 'floor'] as const, r)) {
      const { seconds } = await timed(sides[side]);
      (side === 'lethe' ? detokenize : lookupFloor).push(seconds);
    }
  }
  log(`  detokenize 10k: ${median(detokenize) * 1000} ms vs floor ${median(lookupFloor) * 1000} ms`);

  const http = await benchHttp(db, url, sample, opts.httpRequests);
  log(`  HTTP bulk lookup: p50 ${(http.p50 * 1000).toFixed(1)} ms, p95 ${(http.p95 * 1000).toFixed(1)} ms`);

  // What shredding adds (0.4-0.5 s at scale 1: deleting the entries and keys, about 5% of the
  // erasure) is within the run-to-run spread of a 9 s erasure, and the first erasure after
  // the lookups above runs on colder pages: one untimed erasure first, and five pairs.
  const withShredding: number[] = [];
  const withoutShredding: number[] = [];
  const erase = async (shred: boolean) => {
    await db.query('begin');
    if (!shred) {
      await db.query(`alter table pii_internal.tombstones disable trigger vault_shred_on_erase_insert,
                      disable trigger vault_shred_on_erase_update`);
    }
    const { seconds } = await timed(() => db.query('select count(*) from pii.erase_subjects($1::text[])', [opts.bulk]));
    await db.query('rollback');
    return seconds;
  };
  await erase(true);
  for (let r = 0; r < Math.max(opts.pairs, 5); r++) {
    for (const shred of roundOrder([true, false], r)) {
      (shred ? withShredding : withoutShredding).push(await erase(shred));
    }
  }
  log(
    `  erasure with shredding ${median(withShredding).toFixed(2)} s, without ${median(withoutShredding).toFixed(2)} s`,
  );
  return {
    tokenized,
    tokenizeSeconds,
    tokenizeMedian: median(tokenizeSeconds),
    tokenizeFloor,
    tokenizeFloorMedian: median(tokenizeFloor),
    detokenizeTokens: sample.length,
    detokenize,
    lookupFloor,
    detokenizeMedian: median(detokenize),
    lookupFloorMedian: median(lookupFloor),
    http,
    shredSubjects: opts.bulk.length,
    withShredding,
    withoutShredding,
    withShreddingMedian: median(withShredding),
    withoutShreddingMedian: median(withoutShredding),
  };
}

async function benchHttp(db: pg.Client, url: string, tokens: string[], requests: number): Promise<VaultResult['http']> {
  const pool = createPool({ connectionString: url, application_name: 'lethe-bench-pii-api', max: 4 });
  const app = buildPiiApi({ db: createDb(pool), accessLog: () => {} });
  const key = await createApiKey(createDb(pool), `bench-${Date.now()}`);
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const perRequest = 1000;
    const latencies: number[] = [];
    const started = process.hrtime.bigint();
    for (let i = 0; i < requests; i++) {
      const offset = (i * perRequest) % Math.max(1, tokens.length - perRequest);
      const body = JSON.stringify({ tokens: tokens.slice(offset, offset + perRequest), purpose: 'bench' });
      const { seconds } = await timed(async () => {
        const res = await fetch(`${base}/v1/pii/lookup`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
          body,
        });
        if (res.status !== 200) throw new Error(`PII API answered ${res.status}`);
        await res.arrayBuffer();
      });
      latencies.push(seconds);
    }
    const total = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      requests,
      tokensPerRequest: perRequest,
      p50: quantile(latencies, 0.5),
      p95: quantile(latencies, 0.95),
      tokensPerSecond: (requests * perRequest) / total,
    };
  } finally {
    await app.close();
    await db.query('select pii.revoke_api_key($1)', [key.id]);
    await pool.end();
  }
}
