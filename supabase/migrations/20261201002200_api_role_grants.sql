-- Each API role holds only what the API needs (issue 16, item 21). Supabase's default privileges
-- give anon and authenticated every privilege on a new table in public, and some tables kept
-- them: anon and authenticated held TRUNCATE (which skips row-level security), INSERT, UPDATE and
-- DELETE on the notification_types and analytics_event_types catalogs, and authenticated held
-- TRUNCATE on member_permissions. The catalog test (10_catalog) fails on any such grant.
do $$
declare
  t record;
begin
  for t in
    select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm') and n.nspname in ('public', 'audit')
  loop
    execute format('revoke truncate, references, trigger on %I.%I from anon, authenticated', t.nspname, t.relname);
  end loop;
end
$$;
revoke all on public.notification_types, public.analytics_event_types from anon;
revoke insert, update, delete on public.notification_types, public.analytics_event_types from authenticated;

-- Tables made from now on start with nothing for the API roles; each migration grants what it needs.
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated;
