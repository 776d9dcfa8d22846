-- Demo CRM schema (schema `crm`) for the Lethe demo, tests and benchmarks.
--
-- Tables only: no indexes, keys or foreign keys here. generate.sql loads the rows with
-- INSERT ... SELECT and then builds every index and constraint once, in bulk, which is
-- several times faster than maintaining them row by row during the load. The tables are
-- ordinary logged tables, as in a real application. Autovacuum is off while they load
-- (it would compete for the CPU, and be cancelled by the index builds); generate.sql
-- vacuums and analyzes them itself, then resets the option.
--
-- Run by src/demo/crm/generateCrm.ts; also runnable by hand:
--   psql "$DATABASE_URL" -f src/demo/crm/schema.sql

drop schema if exists crm cascade;
create schema crm;

-- The data subjects. Two brands share one id space.
create table crm.customers (
  id            bigint not null,
  brand_id      int not null,
  email         text,
  first_name    text,
  last_name     text,
  phone         text,
  birth_date    date,
  city          text,
  country       text,
  ip_address    inet,
  status        text not null default 'ACTIVE',
  email_opt_out boolean not null default false,
  sms_opt_out   boolean not null default false,
  created_at    timestamptz not null,
  last_seen_at  timestamptz,
  notes         text
) with (autovacuum_enabled = false);

-- Behavioural history: web/app/email events, partitioned by month. ~30% of the payloads
-- carry the customer's email under "email" (the PII a hand-written erasure forgets).
create table crm.events (
  id          bigint not null,
  customer_id bigint not null,
  occurred_at timestamptz not null,
  kind        text not null,
  payload     jsonb
) partition by range (occurred_at);

create table crm.events_2026_08 partition of crm.events
  for values from ('2026-08-01 00:00:00+00') to ('2026-09-01 00:00:00+00')
  with (autovacuum_enabled = false);
create table crm.events_2026_09 partition of crm.events
  for values from ('2026-09-01 00:00:00+00') to ('2026-10-01 00:00:00+00')
  with (autovacuum_enabled = false);
create table crm.events_2026_10 partition of crm.events
  for values from ('2026-10-01 00:00:00+00') to ('2026-11-01 00:00:00+00')
  with (autovacuum_enabled = false);
-- Late-arriving and out-of-range rows (the generator puts the last days of July here).
create table crm.events_default partition of crm.events default with (autovacuum_enabled = false);

create table crm.orders (
  id               bigint not null,
  customer_id      bigint not null,
  ordered_at       timestamptz not null,
  total            numeric(12,2) not null,
  status           text not null,
  shipping_name    text,
  shipping_address text,
  billing_email    text
) with (autovacuum_enabled = false);

create table crm.order_items (
  id           bigint not null,
  order_id     bigint not null,
  sku          text not null,
  quantity     int not null,
  unit_price   numeric(12,2) not null,
  gift_message text
) with (autovacuum_enabled = false);

-- No foreign key to customers, as in many real schemas (written by another service).
create table crm.loyalty_points (
  id          bigint not null,
  customer_id bigint not null,
  points      int not null,
  reason      text,
  created_at  timestamptz not null
) with (autovacuum_enabled = false);

-- Aggregate built from orders; identifies nobody and must stay untouched by erasure.
create table crm.daily_revenue (
  day      date not null,
  brand_id int not null,
  orders   bigint,
  revenue  numeric
) with (autovacuum_enabled = false);
