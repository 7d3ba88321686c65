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

-- Supabase's default privileges stay as hosted projects have them (new tables in public start with
-- every privilege for the API roles); the catalog test fails on any table a migration leaves so.
