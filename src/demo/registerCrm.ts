// The registration a DBA would write for the demo CRM (schema crm, src/demo/crm): which
// table holds the customers, how the other tables reach them, what erasure does to each
// PII column and how staff views mask it. Through the typed API; the SQL validates.
import type { Lethe } from '../api/createLethe.js';

export async function registerCrm(lethe: Lethe): Promise<void> {
  const r = lethe.registry;
  await r.registerSubjectTable('crm.customers', 'id');
  // The demo CRM is bulk-loaded without foreign keys (src/demo/crm/schema.sql): each join is
  // registered as unenforced, and pii.lint() lists them (docs/schemas.md).
  const unenforcedJoin = true;
  await r.registerTable('crm.events', 'customer_id', 'delete', { unenforcedJoin }); // behavioural history goes
  await r.registerTable('crm.orders', 'customer_id', 'anonymize', { unenforcedJoin }); // revenue stays, names go
  await r.registerChildTable('crm.order_items', 'crm.orders', 'order_id', {
    onErase: 'anonymize',
    parentColumn: 'id',
    unenforcedJoin,
  });
  await r.registerTable('crm.loyalty_points', 'customer_id', 'delete', { unenforcedJoin });
  // crm.daily_revenue is an aggregate that identifies nobody: not registered, never touched.

  const customers: Array<[string, string, string, string]> = [
    ['email', 'null', 'email', 'contact'],
    ['first_name', 'null', 'partial:1,0', 'name'],
    ['last_name', 'null', 'hide', 'name'],
    ['phone', 'null', 'partial:3,2', 'contact'],
    ['birth_date', 'null', 'year', 'demographic'],
    ['city', 'null', 'hide', 'address'],
    ['ip_address', 'null', 'hide', 'device'],
    ['status', 'set:DEACTIVATED', 'clear', 'status'],
    ['email_opt_out', 'set:true', 'clear', 'consent'],
    ['sms_opt_out', 'set:true', 'clear', 'consent'],
    ['notes', 'null', 'hide', 'free_text'],
  ];
  for (const [col, erase, mask, category] of customers)
    await r.registerColumn('crm.customers', col, { erase, mask, category });
  await r.registerColumn('crm.events', 'payload', { erase: 'jsonb_remove:email', mask: 'hide', category: 'behaviour' });
  await r.registerColumn('crm.orders', 'shipping_name', { erase: 'null', mask: 'partial:1,0', category: 'name' });
  await r.registerColumn('crm.orders', 'shipping_address', { erase: 'null', mask: 'hide', category: 'address' });
  await r.registerColumn('crm.orders', 'billing_email', { erase: 'null', mask: 'email', category: 'contact' });
  await r.registerColumn('crm.order_items', 'gift_message', { erase: 'null', mask: 'hide', category: 'free_text' });
}
