// What the numbers were measured on: the machine, the PostgreSQL server and its settings.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type pg from 'pg';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramBytes: number;
  os: string;
  node: string;
  /** 1-minute load average when the benchmark started and ended (other processes share the cores). */
  loadStart: number;
  loadEnd?: number;
}

export interface ServerInfo {
  version: string;
  versionNum: number;
  embedded: boolean;
  settings: Record<string, string>;
  pgStatStatements: boolean;
}

/** Settings that change the numbers, reported with them. */
const REPORTED_SETTINGS = [
  'shared_buffers',
  'work_mem',
  'maintenance_work_mem',
  'effective_cache_size',
  'max_wal_size',
  'checkpoint_timeout',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'jit',
  'max_parallel_workers_per_gather',
  'random_page_cost',
];

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  let cores = cpus.length;
  try {
    // A container may see the host's CPUs but be limited by its cgroup quota.
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (quota && quota !== 'max' && period)
      cores = Math.min(cores, Math.max(1, Math.round(Number(quota) / Number(period))));
  } catch {
    // no cgroup v2 limit
  }
  return {
    cpuModel: cpus[0]?.model?.trim() || 'unknown',
    cores,
    ramBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadStart: os.loadavg()[0]!,
  };
}

export function loadAverage(): number {
  return os.loadavg()[0]!;
}

export async function serverInfo(db: pg.ClientBase, embedded: boolean): Promise<ServerInfo> {
  const { rows } = await db.query<{ version: string; num: string }>(
    `select current_setting('server_version') as version, current_setting('server_version_num') as num`,
  );
  const { rows: settings } = await db.query<{ name: string; setting: string }>(
    `select name, current_setting(name) as setting from pg_settings where name = any($1::text[]) order by name`,
    [REPORTED_SETTINGS],
  );
  const { rows: pgss } = await db.query<{ ok: boolean }>(
    `select exists (select from pg_extension where extname = 'pg_stat_statements') as ok`,
  );
  return {
    version: rows[0]!.version,
    versionNum: Number(rows[0]!.num),
    embedded,
    settings: Object.fromEntries(settings.map((s) => [s.name, s.setting])),
    pgStatStatements: pgss[0]!.ok,
  };
}
