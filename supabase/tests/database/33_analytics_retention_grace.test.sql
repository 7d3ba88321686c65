-- Issue 16, item 19: a downgrade keeps the old analytics retention for a grace period, and what
-- retention deletes is recorded in the organization's audit log.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(4);

select tests.create_user('owner@rg.test');
create temp table o as select tests.create_org('owner@rg.test', 'retention-grace', 'enterprise') a;
select app.create_analytics_partitions(40, 0);
insert into public.analytics_events (org_id, user_id, event_type, occurred_at)
select (select a from o), tests.user_id('owner@rg.test'), 'page.viewed', now() - interval '35 days' from generate_series(1, 3);

update public.organizations set tier = 'free' where id = (select a from o);
select app.apply_analytics_retention();
select is((select count(*)::int from public.analytics_events where org_id = (select a from o)), 3,
          'the day after a downgrade, events older than the new tier keeps are still there');

update analytics.retention_grace set until = now() - interval '1 second' where org_id = (select a from o);
select app.apply_analytics_retention();
select is((select count(*)::int from public.analytics_events where org_id = (select a from o)), 0, 'once the grace period ends they go');
select is((select (new_values ->> 'events')::int from audit.log where org_id = (select a from o) and row_id = 'retention'), 3,
          'and the audit log says how many');
select tests.authenticate_as('owner@rg.test');
select is((select count(*)::int from audit.log where row_id = 'retention'), 1, 'which the organization''s audit readers see');
reset role;

select * from finish();
rollback;
