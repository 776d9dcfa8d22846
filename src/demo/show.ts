// What the demo prints: one customer's data across tables, and audit rows.
import type pg from 'pg';
import type { Lethe } from '../api/createLethe.js';
import { formatCell, keyValues, table } from '../cli/output.js';

export type Out = (text: string) => void;

export async function showCustomer(pool: pg.Pool, id: number, out: Out): Promise<void> {
  const { rows } = await pool.query(
    `select c.email, c.first_name, c.last_name, c.phone, c.birth_date::text as birth_date, c.city, c.country,
            c.ip_address::text as ip_address, c.status, c.email_opt_out, c.sms_opt_out, c.notes,
            (select count(*) from crm.events e where e.customer_id = c.id)::int as events,
            (select count(*) from crm.loyalty_points l where l.customer_id = c.id)::int as loyalty_rows,
            (select count(*) from crm.orders o where o.customer_id = c.id)::int as orders,
            (select string_agg(coalesce(o.shipping_name, '∅'), ', ') from crm.orders o where o.customer_id = c.id) as shipping_names,
            (select coalesce(sum(o.total), 0)::text from crm.orders o where o.customer_id = c.id) as orders_total
       from crm.customers c where c.id = $1`,
    [id],
  );
  const c = rows[0];
  if (!c) return out(`  (customer ${id} not found)\n`);
  out(keyValues(Object.entries(c).map(([k, v]) => [`  ${k}`, v === null ? '∅' : formatCell(v as string)] as const)));
}

export async function showAudit(lethe: Lethe, requestId: string, out: Out): Promise<void> {
  const rows = (await lethe.audit.rows({ requestId, limit: 20 })).reverse();
  out(
    table(
      rows.map((r) => ({
        at: r.at,
        actor: r.actor,
        application: r.application,
        action: r.action,
        details: JSON.stringify(r.details),
      })),
      ['at', 'actor', 'application', 'action', 'details'],
    ),
  );
}
