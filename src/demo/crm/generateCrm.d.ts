import type pg from 'pg';
export interface GenerateCrmOptions {
    /** 1.0 = 1,000,000 customers, 20,000,000 events, 5,000,000 orders, 10,000,000 order items, 3,000,000 loyalty rows. */
    scale: number;
    log?: (s: string) => void;
    /**
     * Connections used at once when given a Pool (capped by the pool's max); default 2.
     * The data does not depend on it. With a single client the build is sequential.
     */
    parallel?: number;
}
export interface GenerateCrmResult {
    /** Wall-clock build time, from dropping the schema to the end of the statistics. */
    seconds: number;
    /** Total size of the schema's tables, indexes and TOAST (bytes). */
    bytes: number;
    /** Exact row counts: the six tables, plus each events partition under its own name. */
    counts: Record<string, number>;
    /** Seconds spent in each step of generate.sql (summed over its chunks; steps may overlap). */
    steps: Record<string, number>;
    /** Wall-clock seconds of each phase. */
    phases: Record<string, number>;
    /** Connections used. */
    connections: number;
}
/** The tables of schema `crm`, parents before children. */
export declare const CRM_TABLES: readonly ["customers", "events", "orders", "order_items", "loyalty_points", "daily_revenue"];
export declare const CRM_EVENT_PARTITIONS: readonly ["events_2026_08", "events_2026_09", "events_2026_10", "events_default"];
export interface CrmRowCounts {
    customers: number;
    events: number;
    orders: number;
    order_items: number;
    loyalty_points: number;
}
/** Row counts generate.sql produces at a scale (daily_revenue depends on the data, so it is not here). */
export declare function crmRowCounts(scale: number): CrmRowCounts;
/** The psql variables generate.sql expects for a scale (whole-table ranges for the @split steps). */
export declare function crmSqlParams(scale: number): Record<string, number>;
/** Replaces psql-style `:name` variables (not `::casts`) by integer literals. */
export declare function substituteSqlParams(sql: string, params: Record<string, number>): string;
interface Step {
    name: string;
    /** Unsubstituted SQL. */
    sql: string;
    /** For "@split(<count>)" steps: the count whose id range the step covers. */
    split?: string;
}
interface Script {
    setup: string;
    phases: {
        name: string;
        steps: Step[];
    }[];
    cleanup: string;
}
/** Parses generate.sql's "-- @setup / @phase / @step / @cleanup" layout. */
export declare function parseGenerateSql(sql: string): Script;
/**
 * Drops and recreates schema `crm`, fills it at `scale` and returns the build time,
 * the size and the exact row counts. Deterministic: the same scale gives the same data.
 * With a Pool, up to `parallel` connections are taken for the whole build (session
 * settings and temporary helper functions live on them); with a client, that one. The
 * connections must not be inside a transaction block (the build ends with VACUUM).
 */
export declare function generateCrm(db: pg.ClientBase | pg.Pool, opts: GenerateCrmOptions): Promise<GenerateCrmResult>;
/** Exact row counts of the crm tables and of each events partition. */
export declare function crmCounts(db: pg.ClientBase | pg.Pool): Promise<Record<string, number>>;
/** Total size of schema crm: every table with its indexes and TOAST (bytes). */
export declare function crmBytes(db: pg.ClientBase | pg.Pool): Promise<number>;
export {};
//# sourceMappingURL=generateCrm.d.ts.map