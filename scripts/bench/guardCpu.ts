// Development harness (issue 13, item 6): backend CPU time (utime+stime of the server
// process, from /proc) of a COPY into crm.events under several trigger setups, each in a
// rolled-back transaction, alternating, medians. Needs the server on this machine.
//   tsx scripts/bench/guardCpu.ts URL ROWS ROUNDS side1,side2,...
// sides: guarded | off (no triggers) | noop (a statement trigger with a transition table doing nothing)
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { eventRows } from './guards.js';
import { median } from './stats.js';

const [url, rowsArg, roundsArg, sidesArg] = process.argv.slice(2);
const rows = Number(rowsArg ?? 200000);
const rounds = Number(roundsArg ?? 5);
const sides = (sidesArg ?? 'guarded,off').split(',');

function cpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10; // ms at 100 Hz
}

const db = new pg.Client({ connectionString: url });
await db.connect();
await db.query(`create table if not exists crm.events_2026_11 partition of crm.events
                  for values from ('2026-11-01 00:00:00+00') to ('2026-12-01 00:00:00+00')`);
await db.query('truncate crm.events_2026_11');
const pid = (await db.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
const info = (
  await db.query<{ first: string; customers: string }>(
    'select (select max(id) + 1 from crm.events) as first, (select count(*) from crm.customers) as customers',
  )
).rows[0]!;
const chunks = eventRows(rows, Number(info.first), Number(info.customers));
await db.query(
  `create or replace function public.noop_guard() returns trigger language plpgsql as $$ begin return null; end $$`,
);

async function once(side: string): Promise<{ cpu: number; wall: number; left: number }> {
  await db.query('begin');
  try {
    if (side !== 'guarded') await db.query(`select pii.set_guard('crm.events', 'off')`);
    if (side === 'noop')
      await db.query(`create trigger noop_guard after insert on crm.events referencing new table as n
                        for each statement execute function public.noop_guard()`);
    const c0 = cpu(pid);
    const t0 = process.hrtime.bigint();
    await pipeline(
      Readable.from(chunks),
      db.query(copyFrom('copy crm.events (id, customer_id, occurred_at, kind, payload) from stdin')),
    );
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    const c1 = cpu(pid);
    const left = Number((await db.query<{ n: string }>('select count(*) as n from crm.events_2026_11')).rows[0]!.n);
    return { cpu: c1 - c0, wall, left };
  } finally {
    await db.query('rollback');
  }
}

await once(sides[0]!); // warm-up
const res: Record<string, { cpu: number[]; wall: number[]; left: number }> = {};
for (const s of sides) res[s] = { cpu: [], wall: [], left: 0 };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [...sides].reverse() : sides;
  for (const s of order) {
    const x = await once(s);
    res[s]!.cpu.push(x.cpu);
    res[s]!.wall.push(x.wall);
    res[s]!.left = x.left;
  }
}
const base = res.off ? median(res.off.cpu) : undefined;
for (const s of sides) {
  const m = median(res[s]!.cpu);
  console.log(
    `${s.padEnd(8)} cpu median ${m} ms [${res[s]!.cpu.join(' ')}]${base ? ` ${(m / base).toFixed(3)}x` : ''}  wall median ${median(res[s]!.wall).toFixed(0)} ms  rows left ${res[s]!.left}`,
  );
}
await db.end();
