-- Issue 16, item 7: purging an organization strips row contents from its audit entries, only
-- after its retention period, and the audit log stays append-only for everything else.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(6);

select tests.create_user('owner@pg.test');
create temp table o as select tests.create_org('owner@pg.test', 'purge-a') a, tests.create_org('owner@pg.test', 'purge-b') b;
select set_config('request.jwt.claims', '', true);
update public.organizations set deleted_at = now() - interval '1 day' where id = (select a from o);
select throws_ok($$ select app.purge_organization((select a from o)) $$, 'TN041', null, 'not before the retention period has passed');

update public.organizations set deleted_at = now() - interval '400 days' where id = (select a from o);
-- someone tries the redaction's door for a living organization
select set_config('app.audit_redacting', (select b from o)::text, true);
select throws_ok($$ update audit.log set old_values = null, new_values = null where org_id = (select b from o) $$, 'TN090', null,
                 'the log of an organization that exists cannot be redacted, even with the setting');
select set_config('app.audit_redacting', '', true);
select ok(app.purge_organization((select a from o)), 'past it, the organization is purged');
select is((select count(*)::int from audit.log where org_id = (select a from o) and (old_values is not null or new_values is not null)), 0,
          'its audit entries lose the rows'' contents');
select isnt((select count(*)::int from audit.log where org_id = (select a from o)), 0, 'but keep who, what and when');
select isnt((select count(*)::int from audit.log where org_id = (select b from o) and new_values is not null), 0,
            'another organization''s entries are untouched');

select * from finish();
rollback;
