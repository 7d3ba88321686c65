-- Catalog rules: RLS and policies on every table in an exposed schema; a fixed search_path on
-- every SECURITY DEFINER function the project owns.
begin;
create extension if not exists pgtap with schema extensions;
select plan(3);

select is_empty($$
  select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'graphql_public') and not c.relrowsecurity
$$, 'every table in an exposed schema has row-level security on');

select is_empty($$
  select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'graphql_public')
    and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
$$, 'every table in an exposed schema has at least one policy');

select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where p.prosecdef and n.nspname in ('public', 'app')
    and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
$$, 'every SECURITY DEFINER function has a fixed search_path');

select * from finish();
rollback;
