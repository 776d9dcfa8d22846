-- Fills the demo CRM (schema `crm`, created by schema.sql) inside PostgreSQL: every table
-- is loaded with INSERT ... SELECT over generate_series, then the keys, indexes and foreign
-- keys are built in bulk, then VACUUM and ANALYZE leave the tables the way autovacuum would
-- (hint bits set, visibility map, statistics), so that nothing kicks in later in the
-- middle of a benchmark. The tables are ordinary logged tables.
--
-- Deterministic: every value is derived from row numbers through hashint8extended()
-- (no random()), and timestamps from epoch seconds (no session time zone involved), so
-- two runs at the same scale produce identical data, whatever the number of connections
-- used and on any PostgreSQL version (checked: 15 and 17 give the same checksums).
--
-- Layout, read by src/demo/crm/generateCrm.ts:
--   -- @setup              run first on every connection (session settings, helpers)
--   -- @phase <name>       phases run in order; the steps of a phase are independent and
--                          run concurrently when the driver has several connections
--   -- @step <name>        one unit of work
--   -- @step <name> @split(<count>)
--                          a load over ids 1..:<count>, written as
--                          generate_series(:<count>_from, :<count>_to): the driver may cut
--                          it into id ranges run as separate steps
--   -- @cleanup            run last on every connection (drops the helpers)
--
-- Parameters are psql variables (:name); generateCrm.ts substitutes them with the counts
-- for the requested scale:
--   :customers :events :orders :order_items (= 2 * orders) :loyalty_points
--   :perm_mult   coprime with :customers (scatters the skewed activity rank over ids)
--   :<count>_from, :<count>_to   the id range of a @split step (1 and :<count> for a
--                                whole table)
-- To run it with psql instead, after schema.sql, at scale 0.001 for instance:
--   psql "$DATABASE_URL" -v customers=1000 -v events=20000 -v orders=5000 \
--     -v order_items=10000 -v loyalty_points=3000 -v perm_mult=619 \
--     -v customers_from=1 -v customers_to=1000 -v events_from=1 -v events_to=20000 \
--     -v orders_from=1 -v orders_to=5000 -v order_items_from=1 -v order_items_to=10000 \
--     -v loyalty_points_from=1 -v loyalty_points_to=3000 -f src/demo/crm/generate.sql
-- (VACUUM refuses to run inside a transaction: run it without --single-transaction).

-- @setup
-- Timestamps are computed as Unix epoch seconds and turned into timestamptz by
-- to_timestamp(), which does not depend on the session time zone (timestamptz + interval
-- does: days across a DST change). UTC is pinned anyway, for anything computed otherwise.
set timezone = 'UTC';

-- Session-local helpers in pg_temp: they vanish with the session and never land in crm.
-- All are single-expression SQL functions, which the planner inlines into the queries
-- (a function call per row would cost several times more). They are declared STABLE, not
-- IMMUTABLE: the planner refuses to inline an IMMUTABLE function whose body uses a STABLE
-- one (text || bigint, ...).

-- Non-negative 63-bit hash of (n, salt); different salts give independent streams.
create function pg_temp.h(n bigint, salt bigint) returns bigint
  language sql stable parallel safe
  as $$ select hashint8extended(n, salt) & 9223372036854775807 $$;

-- Uniform float8 in [0, 1).
create function pg_temp.u(n bigint, salt bigint) returns float8
  language sql stable parallel safe
  as $$ select ((hashint8extended(n, salt) >> 11) & 9007199254740991)::float8 / 9007199254740992.0 $$;

create function pg_temp.pick(arr text[], n bigint, salt bigint) returns text
  language sql stable parallel safe
  as $$ select arr[1 + pg_temp.h(n, salt) % cardinality(arr)] $$;

-- Which customer row n of a behavioural table belongs to. Traffic is skewed like real
-- traffic: an "activity rank" r = floor(c * u^1.5) (rank density ~ r^(-1/3); at scale 1
-- the busiest customer has ~100x the events of the median one, the quietest ~2/3 of the
-- mean), then r is scattered over ids by the bijection r -> (r * mult + c/3) mod c, so
-- busy customers are spread over the whole id range. The same permutation is used for
-- every table: busy customers have many events, orders and loyalty rows alike.
create function pg_temp.skewed(n bigint, salt bigint, c bigint, mult bigint) returns bigint
  language sql stable parallel safe
  as $$ select (floor(c * power(pg_temp.u(n, salt), 1.5))::bigint * mult + c / 3) % c + 1 $$;

-- Customer attributes, as functions of the customer id, so the other tables can repeat
-- them (emails in event payloads, names on orders) without joining.
create function pg_temp.first_name(id bigint) returns text
  language sql stable parallel safe
  as $$ select pg_temp.pick(array[
    'James','Mary','John','Patricia','Robert','Jennifer','Michael','Linda','William','Elizabeth',
    'David','Barbara','Richard','Susan','Joseph','Jessica','Thomas','Sarah','Charles','Karen',
    'Oliver','Amelia','George','Isla','Harry','Ava','Noah','Mia','Jack','Ivy',
    'Leo','Lily','Arthur','Freya','Muhammad','Grace','Oscar','Sophia','Charlie','Emily',
    'Liam','Aoife','Sean','Niamh','Lucas','Emma','Hugo','Chloe','Louis','Camille',
    'Lukas','Hannah','Finn','Lena','Daan','Sanne','Mateo','Lucia','Marco','Giulia',
    'Priya','Arjun','Wei','Yuki'], id, 1) $$;

create function pg_temp.last_name(id bigint) returns text
  language sql stable parallel safe
  as $$ select pg_temp.pick(array[
    'Smith','Jones','Taylor','Brown','Williams','Wilson','Johnson','Davies','Patel','Robinson',
    'Wright','Thompson','Evans','Walker','White','Roberts','Green','Hall','Thomas','Clarke',
    'Jackson','Wood','Harris','Edwards','Turner','Martin','Cooper','Hill','Ward','Hughes',
    'Moore','Clark','King','Harrison','Lewis','Baker','Lee','Allen','Morris','Khan',
    'Murphy','Kelly','Byrne','Walsh','Ryan','Dubois','Moreau','Laurent','Muller','Schmidt',
    'Schneider','Fischer','Jansen','DeVries','Bakker','Garcia','Fernandez','Lopez','Rossi','Russo',
    'Nowak','Kowalski','Chen','Tanaka'], id, 2) $$;

create function pg_temp.email(id bigint) returns text
  language sql stable parallel safe
  as $$ select lower((pg_temp.first_name(id) || '.' || pg_temp.last_name(id)) collate "C") || id::text || '@example.com' $$;

create function pg_temp.phone(id bigint) returns text
  language sql stable parallel safe
  as $$ select '+44 7700 9' || lpad((pg_temp.h(id, 5) % 100000)::text, 5, '0') $$;

-- City and country share one index so they always match.
create function pg_temp.city(id bigint) returns text
  language sql stable parallel safe
  as $$ select pg_temp.pick(array[
    'London','London','London','Manchester','Birmingham','Leeds','Glasgow','Liverpool','Bristol','Sheffield',
    'Edinburgh','Cardiff','Belfast','Nottingham','Leicester','Brighton','Oxford','Cambridge','York','Newcastle',
    'Dublin','Cork','Paris','Lyon','Berlin','Munich','Amsterdam','Rotterdam','Madrid','Barcelona'], id, 6) $$;

create function pg_temp.country(id bigint) returns text
  language sql stable parallel safe
  as $$ select pg_temp.pick(array[
    'GB','GB','GB','GB','GB','GB','GB','GB','GB','GB',
    'GB','GB','GB','GB','GB','GB','GB','GB','GB','GB',
    'IE','IE','FR','FR','DE','DE','NL','NL','ES','ES'], id, 6) $$;

-- Public-looking IPv4 addresses in 2.0.0.0 .. 219.255.255.255.
create function pg_temp.ip(id bigint) returns inet
  language sql stable parallel safe
  as $$ select inet '2.0.0.0' + pg_temp.h(id, 7) % 3657433088 $$;

-- Customer ids grow with signup time: 2019-01-01 .. 2026-07-28.
-- In epoch seconds: 1546300800 is 2019-01-01 00:00 UTC; the last id signs up 2764 days
-- (+ up to one) later, before the first event (2026-07-29).
create function pg_temp.customer_created(id bigint, c bigint) returns float8
  language sql stable parallel safe
  as $$ select 1546300800 + ((id - 1)::float8 / c) * (2764 * 86400) + pg_temp.h(id, 8) % 86400 $$;

-- Order items: 2,000 SKUs with fixed prices, the low-numbered ones the most popular.
create function pg_temp.sku_price(sku bigint) returns numeric
  language sql stable parallel safe
  as $$ select (299 + pg_temp.h(sku, 303) % 19700)::numeric / 100 $$;

create function pg_temp.item_sku(item bigint) returns bigint
  language sql stable parallel safe
  as $$ select floor(2000 * power(pg_temp.u(item, 302), 2))::bigint $$;

create function pg_temp.item_qty(item bigint) returns int
  language sql stable parallel safe
  as $$ select case when pg_temp.h(item, 304) % 100 < 75 then 1
                    when pg_temp.h(item, 304) % 100 < 92 then 2
                    else 3 + (pg_temp.h(item, 305) % 4)::int end $$;

-- Items come in blocks of 4 per pair of orders (2j-1, 2j): the odd order gets 2+e of them,
-- the even one 2-e, e in {-1, 0, 1}; so every order has 1..3 items and there are exactly
-- 2 * (number of orders) items. With an odd number of orders the last one gets 2.
create function pg_temp.pair_e(j bigint) returns bigint
  language sql stable parallel safe
  as $$ select pg_temp.h(j, 301) % 3 - 1 $$;

create function pg_temp.item_order(item bigint, n_orders bigint) returns bigint
  language sql stable parallel safe
  as $$ select least(n_orders,
                     case when (item - 1) % 4 < 2 + pg_temp.pair_e((item - 1) / 4 + 1)
                          then 2 * ((item - 1) / 4 + 1) - 1
                          else 2 * ((item - 1) / 4 + 1) end) $$;

create function pg_temp.order_first_item(o bigint) returns bigint
  language sql stable parallel safe
  as $$ select 4 * ((o + 1) / 2 - 1) + 1
               + case when o % 2 = 1 then 0 else 2 + pg_temp.pair_e((o + 1) / 2) end $$;

create function pg_temp.order_item_count(o bigint, n_orders bigint) returns bigint
  language sql stable parallel safe
  as $$ select case when o % 2 = 0 then 2 - pg_temp.pair_e((o + 1) / 2)
                    when o = n_orders then 2
                    else 2 + pg_temp.pair_e((o + 1) / 2) end $$;

create function pg_temp.item_amount(item bigint) returns numeric
  language sql stable parallel safe
  as $$ select pg_temp.item_qty(item) * pg_temp.sku_price(pg_temp.item_sku(item)) $$;

-- @phase load

-- Ids follow time (2026-07-29 .. 2026-10-31, evenly): the first ~3% (late July) land in the
-- default partition, the rest in the three monthly ones. Each customer's events are spread
-- over the whole table, as real traffic is. ~30% of the payloads carry the customer's email,
-- ~15% their IP address. The payloads are written as JSON text and cast: every value
-- comes from a fixed alphabet (no quote, no backslash), and parsing is cheaper than
-- jsonb_build_object(), which looks up its arguments' types on every call. (offset 0
-- keeps the planner from pulling the subquery up, which would compute cid once per use
-- instead of once per row.)
-- @step load events @split(events)
insert into crm.events (id, customer_id, occurred_at, kind, payload)
select e.i,
       e.cid,
       to_timestamp(1785283200 + ((e.i - 1)::float8 / :events) * (95 * 86400)),  -- 2026-07-29 + 0..95 days
       case when e.r < 12 then 'email_open'
            when e.r < 22 then 'email_click'
            when e.r < 26 then 'login'
            when e.r < 30 then 'newsletter_signup'
            when e.r < 75 then 'page_view'
            when e.r < 88 then 'add_to_cart'
            when e.r < 96 then 'search'
            else 'session_end' end,
       case
         when e.r < 12 then
           ('{"email": "' || pg_temp.email(e.cid) || '", "campaign": "cmp-' || (e.s % 40)::text || '"}')::jsonb
         when e.r < 22 then
           ('{"email": "' || pg_temp.email(e.cid) || '", "campaign": "cmp-' || (e.s % 40)::text
            || '", "utm_source": "newsletter", "page": "/products/' || ((e.s >> 8) % 2000)::text || '"}')::jsonb
         when e.r < 26 then
           ('{"email": "' || pg_temp.email(e.cid) || '", "ip": "' || host(pg_temp.ip(e.cid))
            || '", "device": "' || (array['ios','android','web','web'])[1 + (e.s >> 8) % 4] || '"}')::jsonb
         when e.r < 30 then
           ('{"email": "' || pg_temp.email(e.cid) || '", "page": "/newsletter", "utm_source": "'
            || (array['google','facebook','instagram','tiktok','direct'])[1 + (e.s >> 8) % 5] || '"}')::jsonb
         when e.r < 75 then
           ('{"page": "'
            || case when (e.s >> 32) % 8 < 3 then '/products/' || ((e.s >> 8) % 2000)::text
                    else (array['/','/','/cart','/checkout','/account','/blog/spring-sale','/help/returns','/'])[1 + (e.s >> 32) % 8]
               end
            -- a quarter of the page views carry the campaign source and the IP address
            || case when e.s % 4 = 0
                    then '", "utm_source": "'
                         || (array['google','facebook','instagram','newsletter','direct','bing'])[1 + (e.s >> 40) % 6]
                         || '", "ip": "' || host(pg_temp.ip(e.cid))
                    else '' end
            || '"}')::jsonb
         when e.r < 88 then
           ('{"sku": "SKU-' || lpad(((e.s >> 8) % 2000)::text, 5, '0') || '", "quantity": '
            || (1 + (e.s >> 24) % 3)::text || '}')::jsonb
         when e.r < 96 then
           ('{"query": "' || (array['trainers','rain jacket','gift card','socks','backpack','sunglasses',
                                    'running shorts','yoga mat','water bottle','hoodie'])[1 + (e.s >> 8) % 10]
            || '", "results": ' || ((e.s >> 16) % 60)::text || '}')::jsonb
       end
from (select i,
             pg_temp.skewed(i, 101, :customers, :perm_mult) as cid,
             pg_temp.h(i, 102) % 100 as r,
             pg_temp.h(i, 103) as s
      from generate_series(:events_from, :events_to) as i
      offset 0) as e;

-- Items first in this phase only because they are the second biggest load.
-- @step load order_items @split(order_items)
insert into crm.order_items (id, order_id, sku, quantity, unit_price, gift_message)
select i,
       pg_temp.item_order(i, :orders),
       'SKU-' || lpad(pg_temp.item_sku(i)::text, 5, '0'),
       pg_temp.item_qty(i),
       pg_temp.sku_price(pg_temp.item_sku(i)),
       case pg_temp.h(i, 306) % 100
         when 0 then 'Happy birthday ' || pg_temp.first_name(i + 3) || '! Love, ' || pg_temp.first_name(i + 5)
         when 1 then 'Congratulations on the new job, ' || pg_temp.first_name(i + 3) || '!'
         when 2 then 'Merry Christmas from all of us x'
       end
from generate_series(:order_items_from, :order_items_to) as i;

-- An order falls between the customer's signup and 2026-10-31, more often recent.
-- total is the exact sum of the order's items (computed from the same functions).
-- @step load orders @split(orders)
insert into crm.orders (id, customer_id, ordered_at, total, status, shipping_name, shipping_address, billing_email)
select o.id,
       o.cid,
       to_timestamp(o.created + sqrt(pg_temp.u(o.id, 202)) * (1793487600 - o.created)),  -- .. 2026-10-31 23:00
       pg_temp.item_amount(o.first_item)
         + case when o.n_items > 1 then pg_temp.item_amount(o.first_item + 1) else 0 end
         + case when o.n_items > 2 then pg_temp.item_amount(o.first_item + 2) else 0 end,
       case when o.r < 74 then 'DELIVERED'
            when o.r < 84 then 'SHIPPED'
            when o.r < 89 then 'PROCESSING'
            when o.r < 96 then 'CANCELLED'
            else 'REFUNDED' end,
       case when o.s % 100 < 94 then pg_temp.first_name(o.cid) || ' ' || pg_temp.last_name(o.cid)
            else pg_temp.first_name(o.id + 13) || ' ' || pg_temp.last_name(o.id + 17) end,
       (1 + (o.s >> 8) % 180)::text || ' '
         || (array['High Street','Station Road','Church Lane','Victoria Road','Green Lane','Manor Road',
                   'Park Avenue','Queens Road','Mill Lane','Kings Road','The Crescent','Albert Street'])[1 + (o.s >> 16) % 12]
         || ', ' || pg_temp.city(o.cid) || ' '
         || chr(65 + ((o.s >> 20) % 26)::int) || chr(65 + ((o.s >> 25) % 26)::int) || (1 + (o.s >> 30) % 20)::text
         || ' ' || ((o.s >> 35) % 10)::text || chr(65 + ((o.s >> 40) % 26)::int) || chr(65 + ((o.s >> 45) % 26)::int),
       case when (o.s >> 50) % 100 < 90 then pg_temp.email(o.cid) end
from (select *, pg_temp.customer_created(cid, :customers) as created
      from (select id,
                   pg_temp.skewed(id, 201, :customers, :perm_mult) as cid,
                   pg_temp.order_first_item(id) as first_item,
                   pg_temp.order_item_count(id, :orders) as n_items,
                   pg_temp.h(id, 203) % 100 as r,
                   pg_temp.h(id, 204) as s
            from generate_series(:orders_from, :orders_to) as id
            offset 0) as o0
      offset 0) as o;

-- @step load loyalty_points @split(loyalty_points)
insert into crm.loyalty_points (id, customer_id, points, reason, created_at)
select l.id,
       l.cid,
       case when l.r < 60 then 10 + (l.s % 490)::int
            when l.r < 70 then 100
            when l.r < 80 then 250
            when l.r < 95 then -50 * (1 + (l.s % 20)::int)
            else (l.s % 201)::int - 100 end,
       case when l.r < 60 then 'purchase'
            when l.r < 70 then 'birthday bonus'
            when l.r < 80 then 'referral'
            when l.r < 95 then 'redemption'
            when l.r < 98 then 'manual adjustment'
       end,
       to_timestamp(l.created + pg_temp.u(l.id, 404) * (1793487600 - l.created))  -- .. 2026-10-31 23:00
from (select *, pg_temp.customer_created(cid, :customers) as created
      from (select id,
                   pg_temp.skewed(id, 401, :customers, :perm_mult) as cid,
                   pg_temp.h(id, 402) % 100 as r,
                   pg_temp.h(id, 403) as s
            from generate_series(:loyalty_points_from, :loyalty_points_to) as id
            offset 0) as l0
      offset 0) as l;

-- @step load customers @split(customers)
insert into crm.customers (id, brand_id, email, first_name, last_name, phone, birth_date, city, country,
                           ip_address, status, email_opt_out, sms_opt_out, created_at, last_seen_at, notes)
select id,
       case when pg_temp.h(id, 3) % 100 < 65 then 1 else 2 end,
       pg_temp.email(id),
       pg_temp.first_name(id),
       pg_temp.last_name(id),
       case when pg_temp.h(id, 4) % 100 < 92 then pg_temp.phone(id) end,
       case when pg_temp.h(id, 9) % 100 < 96 then date '1950-01-01' + (pg_temp.h(id, 10) % 20089)::int end,
       pg_temp.city(id),
       pg_temp.country(id),
       case when pg_temp.h(id, 11) % 100 < 90 then pg_temp.ip(id) end,
       case when pg_temp.h(id, 12) % 100 < 88 then 'ACTIVE'
            when pg_temp.h(id, 12) % 100 < 96 then 'INACTIVE'
            else 'BLOCKED' end,
       pg_temp.h(id, 13) % 100 < 18,
       pg_temp.h(id, 14) % 100 < 30,
       to_timestamp(pg_temp.customer_created(id, :customers)),
       case when pg_temp.h(id, 15) % 100 < 93
            then to_timestamp(1785542400 + pg_temp.u(id, 16) * (92 * 86400)) end,  -- 2026-08-01 + 0..92 days
       -- Free-text notes written by support staff: mostly empty, some quoting PII.
       case pg_temp.h(id, 17) % 100
         when 0 then 'Prefers to be contacted by email.'
         when 1 then 'Called on ' || pg_temp.phone(id) || ' about a late delivery.'
         when 2 then 'VIP: ' || pg_temp.first_name(id) || ' ' || pg_temp.last_name(id) || ' gets free shipping.'
         when 3 then 'Moved to ' || pg_temp.city(id) || ', asked us to update the address.'
         when 4 then 'Complained about a damaged parcel, refunded.'
         when 5 then 'Spoke with ' || pg_temp.first_name(id) || ' about loyalty points; follow up next week.'
         when 6 then 'Duplicate account, merged. Old address ' || pg_temp.email(id + 7) || '.'
         when 7 then 'Do not call before 10am.'
         when 8 then 'Birthday gift voucher sent.'
         when 9 then 'Asked for a copy of their data (SAR) on '
                     || to_char(date '2026-01-05' + (pg_temp.h(id, 18) % 200)::int, 'YYYY-MM-DD') || '.'
         when 10 then 'Chargeback disputed, see ticket #' || (10000 + pg_temp.h(id, 19) % 90000)::text || '.'
         when 11 then 'Wholesale enquiry, passed to sales.'
         when 12 then 'Prefers SMS; landline disconnected.'
         when 13 then 'Customer ' || pg_temp.first_name(id) || ' reported a phishing email.'
         when 14 then 'Accessibility: large print invoices.'
       end
from generate_series(:customers_from, :customers_to) as id;

-- @phase keys
-- Each events partition gets its indexes in a step of its own (so they can be built
-- concurrently); the next phase declares them on the parent, which attaches these
-- instead of building new ones. Names are the ones PostgreSQL would choose.

-- @step index events_2026_08
alter table crm.events_2026_08 add constraint events_2026_08_pkey primary key (id, occurred_at);
create index events_2026_08_customer_id_idx on crm.events_2026_08 (customer_id);

-- @step index events_2026_09
alter table crm.events_2026_09 add constraint events_2026_09_pkey primary key (id, occurred_at);
create index events_2026_09_customer_id_idx on crm.events_2026_09 (customer_id);

-- @step index events_2026_10
alter table crm.events_2026_10 add constraint events_2026_10_pkey primary key (id, occurred_at);
create index events_2026_10_customer_id_idx on crm.events_2026_10 (customer_id);

-- @step index order_items
alter table crm.order_items add constraint order_items_pkey primary key (id);
create index order_items_order_id_idx on crm.order_items (order_id);

-- @step index orders
alter table crm.orders add constraint orders_pkey primary key (id);
create index orders_customer_id_idx on crm.orders (customer_id);

-- @step index loyalty_points
alter table crm.loyalty_points add constraint loyalty_points_pkey primary key (id);
create index loyalty_points_customer_id_idx on crm.loyalty_points (customer_id);

-- @step index customers
alter table crm.customers add constraint customers_pkey primary key (id);
create index customers_email_idx on crm.customers (email);

-- @step index events_default
alter table crm.events_default add constraint events_default_pkey primary key (id, occurred_at);
create index events_default_customer_id_idx on crm.events_default (customer_id);

-- @phase constraints

-- @step foreign key order_items
alter table crm.order_items add constraint order_items_order_id_fkey
  foreign key (order_id) references crm.orders (id) on delete cascade;

-- @step foreign key orders
alter table crm.orders add constraint orders_customer_id_fkey
  foreign key (customer_id) references crm.customers (id);

-- Revenue per UTC day and brand, cancelled and refunded orders excluded.
-- @step load daily_revenue
insert into crm.daily_revenue (day, brand_id, orders, revenue)
select (o.ordered_at at time zone 'UTC')::date, c.brand_id, count(*), sum(o.total)
from crm.orders as o
join crm.customers as c on c.id = o.customer_id
where o.status not in ('CANCELLED', 'REFUNDED')
group by 1, 2;
alter table crm.daily_revenue add constraint daily_revenue_pkey primary key (day, brand_id);

-- On the partitioned parent (so future partitions get them too): attaches the
-- partitions' indexes built above.
-- @step index events
alter table crm.events add constraint events_pkey primary key (id, occurred_at);
create index events_customer_id_idx on crm.events (customer_id);

-- @phase vacuum
-- VACUUM cannot run in a transaction block: one statement per step. The events partitions
-- get their statistics in the next phase: ANALYZE of the parent covers them too.

-- @step vacuum events_2026_08
vacuum crm.events_2026_08;

-- @step vacuum events_2026_09
vacuum crm.events_2026_09;

-- @step vacuum events_2026_10
vacuum crm.events_2026_10;

-- @step vacuum order_items
vacuum (analyze) crm.order_items;

-- @step vacuum orders
vacuum (analyze) crm.orders;

-- @step vacuum loyalty_points
vacuum (analyze) crm.loyalty_points;

-- @step vacuum customers
vacuum (analyze) crm.customers;

-- @step vacuum events_default
vacuum crm.events_default;

-- @step vacuum daily_revenue
vacuum (analyze) crm.daily_revenue;

-- @phase statistics

-- Statistics of the partitioned parent (sampled across its partitions) and of each partition.
-- @step analyze events
analyze crm.events;

-- @phase finish

-- schema.sql turned autovacuum off for the load; everything is vacuumed and analyzed now.
-- @step autovacuum back on
alter table crm.customers reset (autovacuum_enabled);
alter table crm.events_2026_08 reset (autovacuum_enabled);
alter table crm.events_2026_09 reset (autovacuum_enabled);
alter table crm.events_2026_10 reset (autovacuum_enabled);
alter table crm.events_default reset (autovacuum_enabled);
alter table crm.orders reset (autovacuum_enabled);
alter table crm.order_items reset (autovacuum_enabled);
alter table crm.loyalty_points reset (autovacuum_enabled);
alter table crm.daily_revenue reset (autovacuum_enabled);

-- @cleanup
drop function if exists
  pg_temp.item_amount(bigint), pg_temp.order_item_count(bigint, bigint), pg_temp.order_first_item(bigint),
  pg_temp.item_order(bigint, bigint), pg_temp.pair_e(bigint), pg_temp.item_qty(bigint), pg_temp.item_sku(bigint),
  pg_temp.sku_price(bigint), pg_temp.customer_created(bigint, bigint), pg_temp.ip(bigint), pg_temp.country(bigint),
  pg_temp.city(bigint), pg_temp.phone(bigint), pg_temp.email(bigint), pg_temp.last_name(bigint),
  pg_temp.first_name(bigint), pg_temp.skewed(bigint, bigint, bigint, bigint), pg_temp.pick(text[], bigint, bigint),
  pg_temp.u(bigint, bigint), pg_temp.h(bigint, bigint);
