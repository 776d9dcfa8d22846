// The "Findings" section of BENCHMARKS.md: for each ratio that misses its goal, what the
// profiles of this run say limits it, and the engine change that would lift it. Written
// from the run's own numbers, so a rerun after a fix says what is left.
import type { StatementStat } from './profile.js';
import { type BenchResults, summaryRows } from './results.js';
import type { RowsWritten } from './state.js';
import { fmtInt, fmtMs, fmtRatio, fmtSeconds } from './stats.js';

const sec = (ms: number) => fmtSeconds(ms / 1000);
const pct = (part: number, whole: number) => `${Math.round((100 * part) / whole)}%`;

function find(stats: StatementStat[] | undefined, re: RegExp): StatementStat | undefined {
  return stats?.find((s) => re.test(s.query));
}

function sumOf(stats: StatementStat[] | undefined, re: RegExp): number {
  return (stats ?? []).filter((s) => re.test(s.query)).reduce((a, s) => a + s.totalMs, 0);
}

const DML = /^(update|delete from) crm\./i;

/** Tables where the engine wrote more rows than the floor did for the same subjects. */
function extraWrites(lethe: RowsWritten | undefined, hand: RowsWritten | undefined) {
  const out: Array<{ table: string; engine: number; floor: number }> = [];
  for (const [table, e] of Object.entries(lethe ?? {})) {
    const h = hand?.[table] ?? { ins: 0, upd: 0, del: 0 };
    const engine = e.upd + e.del;
    const floor = h.upd + h.del;
    if (engine > floor * 1.02 + 10) out.push({ table, engine, floor });
  }
  return out;
}

export function findings(r: BenchResults): string {
  const out: string[] = [];
  const fixes: string[] = [];
  const misses = summaryRows(r).filter((x) => x.verdict === 'MISSES');
  const b = r.bulk;
  const p = r.profile;

  // --- Item 1 -------------------------------------------------------------------------
  if (b && b.samples.lethe.length) {
    const ratio = b.medians.hand / b.medians.lethe;
    const extra = extraWrites(b.rowsWritten.lethe, b.rowsWritten.hand);
    const lines: string[] = [];
    lines.push(
      `**Bulk erasure (item 1): ${fmtRatio(ratio)} of the floor's throughput** ` +
        `(${fmtSeconds(b.medians.lethe)} against ${fmtSeconds(b.medians.hand)}; goal 0.90x). The final states are identical` +
        (extra.length
          ? '; the work is not:'
          : ", and so are the rows written; what is left is the engine's own bookkeeping:"),
    );
    for (const x of extra) {
      const e = p?.engine.find((s) => s.table === x.table);
      const h = p?.hand.find((s) => s.table === x.table);
      lines.push(
        `- \`${x.table}\`: the engine writes ${fmtInt(x.engine)} rows where the floor writes ${fmtInt(x.floor)}. ` +
          `${pct(x.engine - x.floor, x.engine)} of the subjects' rows there already hold the values erasure gives them ` +
          `(NULL, mostly) and are rewritten anyway: each such UPDATE writes a new row version (on full pages not a HOT one, ` +
          `so a new entry in every index), feeds the row to the guard trigger's transition table and leaves a dead version to VACUUM. ` +
          (e && h ? `Under EXPLAIN ANALYZE that statement takes ${sec(e.ms)} against the floor's ${sec(h.ms)}.` : ''),
      );
    }
    const top = find(p?.engineStatements, /pii\.erase_subjects/);
    if (top) {
      const dml = sumOf(p?.engineStatements, DML);
      const tomb = sumOf(p?.engineStatements, /^(SELECT pii\.flag_subjects|update pii\.tombstones)/);
      const resolve = sumOf(p?.engineStatements, /^select coalesce\(pg_catalog\.array_agg\(r\.subject_key\)/);
      const parts = [
        tomb > 0
          ? `tombstones ${sec(tomb)} (an INSERT of every subject, then a second UPDATE of the same rows to set erased_at)`
          : '',
        resolve > 0 ? `resolving and hashing the keys ${sec(resolve)}` : '',
      ].filter(Boolean);
      lines.push(
        `- Outside the five DML statements (${sec(dml)} of the call's ${sec(top.totalMs)} in pg_stat_statements) the engine spends ` +
          `${sec(top.totalMs - dml)}: ${parts.length ? `${parts.join(', ')}, and the rest` : 'mostly'} in plan generation, matching and the audit row.`,
      );
    }
    if (ratio > 1) {
      lines.push(
        `- The engine ahead of the floor: both now write the same rows with the same plans (see the table below), ` +
          'so the remaining difference lies outside the statements and is not attributed here.',
      );
    }
    const lossy = (p?.engine ?? []).some((s) => /lossy=\d+/.test(s.plan));
    if (lossy) {
      const removed = (p?.engine ?? []).reduce(
        (a, s) =>
          a + [...s.plan.matchAll(/Rows Removed by Index Recheck: (\d+)/g)].reduce((x, m) => x + Number(m[1]), 0),
        0,
      );
      lines.push(
        `- Shared with the floor: with work_mem at ${r.server.settings.work_mem ?? '?'} the bitmap heap scans over ${fmtInt(b.subjects)} ` +
          `subjects go lossy and recheck ${fmtInt(removed)} rows. This costs both sides alike, so it does not move the ratio.`,
      );
    }
    out.push(lines.join('\n'));
    if (extra.length) {
      const t = extra.map((x) => `\`${x.table}\``).join(', ');
      fixes.push(
        `**Do not rewrite rows that are already erased** (erasure engine, \`pii_internal.erase_plan\`): append ` +
          `\`and not (<erased-state predicate>)\` to each anonymize UPDATE, the predicate being the AND of \`pii_internal.column_erased_sql\` ` +
          `(06_guards already builds exactly this for the guards and \`pii_internal.row_erased_sql\` for verification) over the table's ` +
          `non-keep columns, and no filter when one of them cannot be told (uuid pseudonyms) or the key itself is rewritten. ` +
          `Here it removes ${fmtInt(extra.reduce((a, x) => a + x.engine - x.floor, 0))} row writes (${t}). It also makes a second ` +
          `erasure of the same subject write nothing, and keeps a pseudonym from being pseudonymised again. rows_affected then counts rows changed.`,
      );
    }
    if (top && sumOf(p?.engineStatements, /^update pii\.tombstones/) > 0) {
      fixes.push(
        `**One tombstone write per subject** (\`pii.erase_subjects\`): insert the tombstones with erased_at already set ` +
          `(\`insert ... on conflict do update set erased_at = now()\`) instead of \`flag_subjects\` followed by an UPDATE of the same rows.`,
      );
    }
  }

  // --- Item 2 -------------------------------------------------------------------------
  if (b && b.samples.request.length) {
    const ratio = b.medians.hand / b.medians.request;
    const lines: string[] = [];
    lines.push(
      `**Request path (item 2): ${fmtRatio(ratio)} of the floor's throughput** (${fmtSeconds(b.medians.request)} in one transaction` +
        (r.committed
          ? `; ${fmtSeconds(r.committed.seconds)} committed through the worker, of which ${fmtSeconds(r.committed.finishingSeconds)} ` +
            `after the last chunk, i.e. \`pii.finish_request\` verifying`
          : '') +
        "). On top of item 1's causes:",
    );
    const rs = p?.requestStatements ?? [];
    for (const s of rs.filter((x) => DML.test(x.query) && x.calls > 1)) {
      const one = p?.engineStatements.find((x) => x.query === s.query);
      lines.push(
        `- \`${s.query.slice(0, 60)}…\` runs ${s.calls} times (once per chunk): ${sec(s.totalMs)}` +
          (one ? ` against ${sec(one.totalMs)} as one statement over all the subjects` : '') +
          '.',
      );
    }
    const quad = find(rs, /from unnest\(claimed, keys, scps\)/);
    if (quad && quad.totalMs > 500) {
      lines.push(
        `- \`${quad.query.slice(0, 90)}…\`: ${sec(quad.totalMs)} over ${quad.calls} chunks for a list lookup: ` +
          '`u.h = any (to_erase)` with a bytea[] variable is a linear search per row, quadratic in the chunk size.',
      );
      fixes.push(
        '**Chunk bookkeeping in O(n)** (`pii.process_request_chunk`): replace `where u.h = any (to_erase)` by a join ' +
          `with \`unnest(to_erase)\` (a hash join); it costs ${sec(quad.totalMs)} here.`,
      );
    }
    const chunked = rs.filter((x) => DML.test(x.query) && x.calls > 1);
    const single = chunked.map((x) => p?.engineStatements.find((y) => y.query === x.query)?.totalMs ?? Number.NaN);
    if (chunked.length && single.every(Number.isFinite)) {
      const chunkedMs = chunked.reduce((a, x) => a + x.totalMs, 0);
      const singleMs = single.reduce((a, x) => a + x, 0);
      const chunks = rs.find((x) => DML.test(x.query) && x.calls > 1)?.calls ?? 1;
      lines.push(
        `- Chunked, the DML costs ${sec(chunkedMs)} in ${chunks} chunks of \`pii.settings.chunk_size\` against ` +
          `${sec(singleMs)} for the same statements run once over all the subjects: a subject's rows lie scattered over ` +
          "its tables' pages, so every chunk plans each statement, descends every partition's index and reads the pages " +
          'it shares with the other chunks again.',
      );
      fixes.push(
        '**Chunks cut by table, not by subject** (`pii.process_request_chunk`): no split of randomly placed subjects ' +
          'gives chunks disjoint pages, so any chunking by subject reads the shared pages once per chunk. One statement ' +
          "per table over all of the request's subjects, each table a transaction of its own (the tombstones already keep " +
          'the subjects out meanwhile), reads each page once and lets two workers erase two tables at once; the price is ' +
          'that a subject is erased table by table instead of all at once, so the proof and the rollback become per table.',
      );
    }
    const verify = find(rs, /pii\.verify_erasure/);
    if (verify) lines.push(`- \`pii.finish_request\` verifies the whole request: ${sec(verify.totalMs)} (item 3).`);
    const childScan = p?.engine.find((s) => /Seq Scan on order_items/.test(s.plan));
    const perChunk = rs.find((x) => /^update crm\.order_items/.test(x.query) && x.calls > 1);
    if (childScan && perChunk) {
      fixes.push(
        `**Child tables driven by their parent's keys** (\`pii_internal.subject_rows_sql\` for tables registered through a parent): ` +
          'the join `from crm.orders p1 where t.order_id = p1.id and p1.customer_id = any ($1)` is planned as a hash join over a ' +
          `sequential scan of the whole child table, once per chunk (${perChunk.calls} scans of order_items here). Writing it as ` +
          "`t.order_id = any (array(select p1.id from crm.orders p1 where p1.customer_id = any ($1)))` lets the child's foreign-key " +
          'index drive it, so a chunk reads only its own rows.',
      );
    }
    out.push(lines.join('\n'));
  }

  // --- Item 3 -------------------------------------------------------------------------
  if (r.verify && b) {
    const ratio = r.verify.median / b.medians.lethe;
    const vs = r.verifyStatements ?? [];
    const lines: string[] = [];
    lines.push(
      `**Verification (item 3): ${fmtRatio(ratio)} of the erasure's time** (${fmtSeconds(r.verify.median)}; goal 0.50x).` +
        (vs.length ? ' Its statements:' : ''),
    );
    const hashAll = find(vs, /^select coalesce\(pg_catalog\.array_agg\(x\.k\)/);
    if (hashAll) {
      lines.push(
        `- Finding the subjects again: every key of the subject table is hashed (${fmtInt(r.dataset.counts.customers ?? Number.NaN)} HMACs) ` +
          `and joined with the request's hashes: ${sec(hashAll.totalMs)}.`,
      );
    }
    for (const s of vs.filter((x) => /^select \$\d+::text, x\.col/.test(x.query))) {
      const table = /from (crm\.\w+)/.exec(s.query)?.[1] ?? '?';
      lines.push(`- Checking \`${table}\`: ${sec(s.totalMs)} (${fmtInt(s.sharedHit + s.sharedRead)} buffers).`);
    }
    if (vs.length) {
      lines.push(
        '- So verification re-reads every row of the subjects in every registered table (the rows the erasure has just ' +
          'written, and for the delete tables index entries leading to the tuples it has just deleted, not yet vacuumed) and reads the ' +
          "whole subject table to hash its keys: by construction it costs a large part of the erasure's own reads. Each check also " +
          'joins with `unnest(keys, scopes, hashes)` filtered by `l.s is not distinct from null`, which the planner estimates at 1 row ' +
          'whatever the length of the list.',
      );
    }
    out.push(lines.join('\n'));
    if (ratio > 0.5) {
      fixes.push(
        '**Cheaper verification** (08_verification): (a) drop the `l.s is not distinct from <scope>` filter from the ' +
          "`unnest(...)` side when the install is unscoped, and when scoped move it into the join (`coalesce(l.s, '') = coalesce(<scope>, '')`): " +
          'the filter makes the planner expect 1 row from a list of thousands, so it nests a re-scan of the subject-key index per ' +
          'list entry whenever that index scan looks cheap (chunks of a few thousand subjects: quadratic; the same shape is in ' +
          '`pii_internal.record_identifier_residuals`); (b) check each chunk right after its DML, in `pii.process_request_chunk`, while the ' +
          'keys are still at hand and the pages hot, and keep `finish_request` to aggregating: no hashing of the whole subject table, ' +
          "no second pass over the deleted rows' pages.",
      );
    }
  }

  // --- Item 4 -------------------------------------------------------------------------
  if (r.single?.statements.length) {
    const s = r.single;
    const top = find(s.statements, /pii\.erase_subjects/);
    if (top) {
      const perCall = top.totalMs / top.calls;
      const dml = sumOf(s.statements, DML) / top.calls;
      // The costliest nested statements per call (track = all), whatever their text.
      const nested = s.statements
        .filter((x) => x !== top && !/pii\.erase_subjects/.test(x.query))
        .sort((a, b) => b.totalMs - a.totalMs)
        .slice(0, 6)
        .map((x) => `\`${x.query.replace(/\s+/g, ' ').slice(0, 60)}…\` ${fmtMs(x.totalMs / top.calls / 1000)}`);
      out.push(
        `**Single subject (item 4): p50 ${fmtMs(s.lethe.p50)} against ${fmtMs(s.hand.p50)} for the floor.** Per call ` +
          `${fmtMs(perCall / 1000)}, of which the DML statements ${fmtMs(dml / 1000)}. The costliest statements per call: ` +
          `${nested.join('; ')}. The statements come from the plan cache (no SQL is generated per call), but each runs ` +
          "through the table owner's deputy as dynamic SQL, so PostgreSQL parses and plans it on every call; the audit row " +
          'and the erasure ledger append to hash chains (one locked head each), and the key is resolved and hashed through ' +
          "the subject table owner's deputy.",
      );
      fixes.push(
        '**Single-subject erasure at the floor** (`pii_internal.erase_step`, deputies, audit): (a) the deputies run each ' +
          'cached statement with EXECUTE, planned every time: generating one function per table and registry version with the ' +
          'statements as static SQL (plpgsql caches their plans) removes the planning, at the price of owner-owned generated code ' +
          "that Lethe must keep out of the owner's reach; (b) the audit and ledger chains serialise every erasure on their head " +
          'row: per-backend chain segments, merged when read, keep the proof and drop the lock. Neither is built: with them the ' +
          'fixed cost left is the tombstone, the key hash and the statements themselves.',
      );
    }
  }

  // --- Item 5 -------------------------------------------------------------------------
  const m = r.masking;
  if (m?.status === 'measured') {
    const scan = m.scanCopy.maskedMedian / m.scanCopy.baseMedian;
    if (scan > 1.1) {
      out.push(
        `**Masked full scan (item 5): ${fmtRatio(scan)}** as COPY TO STDOUT, ${fmtRatio(m.scanFetch.maskedMedian / m.scanFetch.baseMedian)} ` +
          'fetched by a client. The view inlines every mask as an expression over the base column, so each row computes every masked ' +
          `value on every read (strpos/left/split_part for the email mask, char_length/left for the partial masks); the masked output ` +
          `is smaller (${pct(m.scanCopy.maskedBytes, m.scanCopy.baseBytes)} of the bytes), which does not make up for it in a server-side COPY. ` +
          'A client that parses what it fetches hides part of it.',
      );
      fixes.push(
        '**Masks computed on write, not on read** (20_masking): for the masks that depend on the value alone (email, partial, ' +
          'year, set), keep the masked value next to the raw one (a STORED generated column, or a side table maintained by a trigger) ' +
          "and let the view select it: a scan then costs what a scan of the base table costs. The SPEC's reference figures point the same way.",
      );
    }
  }

  // --- Item 6 -------------------------------------------------------------------------
  const g = r.guards;
  if (g) {
    const ratio = g.guardedMedian / g.unguardedMedian;
    if (ratio > 1.15) {
      // The hashing statement by its start: the stored text is cut at 220 characters, before
      // its "from lethe_new_rows" (which the short guard_hits_in_place_sql call matched).
      const hash = find(g.statements, /^select coalesce\(pg_catalog\.array_agg\(h\.k\)/);
      const scrub = find(g.statements, DML);
      const extra = g.guardedMedian - g.unguardedMedian;
      out.push(
        `**Guards (item 6): ${fmtRatio(ratio)}**: the guarded COPY takes ${fmtSeconds(extra)} more. ` +
          (hash
            ? `The distinct subjects of the ${fmtInt(g.rows)} new rows hashed and probed against the tombstones: ${sec(hash.totalMs)}; `
            : '') +
          (scrub
            ? `scrubbing the ${fmtInt(g.scrubbedRows)} rows of erased subjects (\`${scrub.query.slice(0, 50)}…\`, over every partition): ${sec(scrub.totalMs)}; `
            : '') +
          "the rest is PostgreSQL capturing every new row (payload included) into the AFTER trigger's transition table.",
      );
      fixes.push(
        '**Guards without a transition table** (60_guards): the guard already hashes only keys whose keyed bucket a tombstone ' +
          "has (migration 0022) and skips Lethe's own statements (0024); what is left is PostgreSQL copying every new row, " +
          "payload included, into the AFTER STATEMENT trigger's transition table, then the distinct keys' bucket probe. A " +
          'row-level BEFORE INSERT trigger probing the buckets (no transition table) costs a PL/pgSQL call per row, more than the ' +
          'copy at 1,000,000 rows; the design that passes is a guard that is not a trigger on the hot path: an index-only bucket ' +
          'probe by the sync itself (a constraint on the subject column against the buckets), which PostgreSQL cannot express ' +
          'without C. So the floor is the transition-table capture.',
      );
    }
  }

  // --- Item 7 -------------------------------------------------------------------------
  const c = r.csv;
  if (c && c.rows / c.stagingMedian < 200_000) {
    out.push(
      `**CSV staging (item 7): ${fmtInt(c.rows / c.stagingMedian)} rows/s** against ${fmtInt(c.rows / c.floorMedian)} rows/s for ` +
        `the same COPY into a plain unlogged table${c.stagingIndexes ? `: the difference is the staging table's ${c.stagingIndexes} index(es)` : ''}; the rest is COPY itself on this machine.`,
    );
  }

  if (!out.length)
    return misses.length
      ? misses.map((x) => `- ${x.measure}: ${x.ratio} (goal ${x.goal}).`).join('\n')
      : 'Every measured ratio meets its goal.';
  const text = out.join('\n\n');
  return fixes.length
    ? `${text}\n\n### Designs that would pass the remaining bars\n\nNot built yet; each addresses a cost measured above.\n\n${fixes.map((f, i) => `${i + 1}. ${f}`).join('\n')}`
    : text;
}
