-- Catalog rules: RLS and policies on every table in an exposed schema (and in app, which holds
-- the auth server's tables); a fixed search_path on every SECURITY DEFINER function the project
-- owns; an index led by every org_id column; an index for every foreign key; the audit trigger on
-- every tenant table; auth hooks callable by the auth server only.
begin;
create extension if not exists pgtap with schema extensions;
select plan(13);

select is_empty($$
  select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'graphql_public', 'audit', 'app') and not c.relrowsecurity
$$, 'every table in an exposed schema has row-level security on');

select is_empty($$
  select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'graphql_public', 'audit', 'app')
    and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
$$, 'every table in an exposed schema has at least one policy');

select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where p.prosecdef and n.nspname in ('public', 'app', 'audit')
    and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
$$, 'every SECURITY DEFINER function has a fixed search_path');

select is_empty($$
  select format('%I.%I.%I', n.nspname, c.relname, a.attname)
  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'audit', 'app') and a.attname = 'org_id' and not a.attisdropped
    and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indkey[0] = a.attnum)
$$, 'every org_id column leads an index');

select is_empty($$
  select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname = 'public'
    and (c.relname = 'organizations' or exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
    and not exists (select 1 from pg_trigger t where t.tgrelid = c.oid and t.tgfoid = 'app.audit_record_change'::regproc)
    -- a send fans out to thousands of rows: app.notify writes one audit entry per send instead (23_notification_rules);
    -- analytics events are an append-only log themselves; roll-ups and usage are computed from the data
    and c.relname not in ('notifications', 'notification_deliveries', 'notification_audience_deliveries', 'analytics_events', 'analytics_hourly', 'analytics_daily', 'usage_daily')
$$, 'every tenant table is audited (notifications once per send; analytics is a log of its own)');

select is_empty($$
  select p.oid::regprocedure::text || ' executable by ' || r.rolname
  from pg_proc p cross join pg_roles r
  where p.oid in ('public.custom_access_token_hook(jsonb)'::regprocedure, 'public.hook_password_verification_attempt(jsonb)'::regprocedure)
    and r.rolname in ('anon', 'authenticated', 'service_role') and has_function_privilege(r.oid, p.oid, 'execute')
$$, 'auth hooks cannot be called by API roles');

select ok(has_function_privilege('supabase_auth_admin', 'public.custom_access_token_hook(jsonb)', 'execute')
          and has_function_privilege('supabase_auth_admin', 'public.hook_password_verification_attempt(jsonb)', 'execute'),
  'the auth server can call both hooks');

select is_empty($$
  select r.rolname || ' may ' || priv
  from pg_roles r cross join unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) priv
  where r.rolname in ('anon', 'authenticated', 'service_role') and has_table_privilege(r.oid, 'audit.log', priv)
$$, 'no API role may write the audit log');

-- TRUNCATE skips row-level security and REFERENCES/TRIGGER are never needed by a request: no API
-- role holds them on a table of an exposed schema (storage keeps hosted Storage's own grants).
-- anon holds nothing at all there: the Data API gives it no table.
select is_empty($$
  select format('%s may %s on %s.%s', r.rolname, priv, n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join pg_roles r cross join unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER']) priv
  where c.relkind in ('r', 'p', 'v', 'm') and n.nspname in ('public', 'audit', 'graphql_public')
    and r.rolname in ('anon', 'authenticated') and has_table_privilege(r.oid, c.oid, priv)
$$, 'no API role holds TRUNCATE, REFERENCES or TRIGGER on an exposed table');
select is_empty($$
  select format('anon may %s on %s.%s', priv, n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) priv
  where c.relkind in ('r', 'p', 'v', 'm') and n.nspname in ('public', 'audit', 'graphql_public')
    and has_table_privilege('anon', c.oid, priv)
$$, 'anon holds nothing on an exposed table');
select is_empty($$
  select format('authenticated may %s on public.%s', priv, t)
  from unnest(array['notification_types', 'analytics_event_types']) t cross join unnest(array['INSERT', 'UPDATE', 'DELETE']) priv
  where has_table_privilege('authenticated', format('public.%I', t), priv)
$$, 'catalogs are read-only to members');

-- `col in (select helper())` is a per-row hashed-subplan filter that no index can serve; policies
-- use `col = any (array(select helper()))`, an InitPlan that becomes an index condition.
select is_empty($$
  select format('%s on %s', p.polname, p.polrelid::regclass)
  from pg_policy p
  where concat(pg_get_expr(p.polqual, p.polrelid), ' ', pg_get_expr(p.polwithcheck, p.polrelid)) ~* 'IN \( SELECT app\.'
$$, 'no policy filters rows through an IN sub-select of a helper');

-- Deleting or changing a referenced row (a user, a file, an organization member) finds the rows
-- that name it through an index: without one it reads the whole table, once for each row deleted.
-- An index serves a foreign key when its leading columns are the key's, org_id aside (a tenant key
-- (org_id, x) is served by an index on x): a valid btree, which may leave out the key's nulls. Exempt: the
-- events' type, a catalog row nobody deletes while events name it, where an index would cost every
-- event insert.
select is_empty($$
  with fks as (
    select c.conrelid, c.conkey, c.conname,
           array(select a.attnum from pg_attribute a
                 where a.attrelid = c.conrelid and a.attnum = any (c.conkey) and a.attname <> 'org_id') as key_cols
    from pg_constraint c join pg_class r on r.oid = c.conrelid join pg_namespace n on n.oid = r.relnamespace
    where c.contype = 'f' and n.nspname in ('public', 'app', 'audit') and c.conparentid = 0
      and (c.conrelid, c.conname) <> ('public.analytics_events'::regclass, 'analytics_events_event_type_fkey'))
  select format('%s: %s', f.conrelid::regclass, f.conname)
  from fks f
  where not exists (
    select 1
    from pg_index i, generate_series(1, cardinality(f.conkey)) k,
         lateral (select (string_to_array(i.indkey::text, ' ')::int2[])[1:k] as lead) l
    where i.indrelid = f.conrelid and i.indisvalid
      and (select amname from pg_class c join pg_am am on am.oid = c.relam where c.oid = i.indexrelid) = 'btree'
      and (i.indpred is null
           or cardinality(f.conkey) = 1
              and pg_get_expr(i.indpred, i.indrelid) = format('(%I IS NOT NULL)',
                    (select attname from pg_attribute where attrelid = f.conrelid and attnum = f.conkey[1])))
      and cardinality(l.lead) = k and f.conkey @> l.lead and l.lead @> f.key_cols)
$$, 'every foreign key has an index to find the rows that name a key');

select * from finish();
rollback;
