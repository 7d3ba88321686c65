-- Deleting an organization is soft: it vanishes for every member at once and its owner can
-- restore it within the tier's retention period.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(9);

select tests.create_user(e) from unnest(array['owner@sd.test', 'admin@sd.test']) e;
create temp table o as select tests.create_org('owner@sd.test', 'soft-del') a;
grant select on o to authenticated;
select tests.add_members((select a from o), 'admin@sd.test', 'admin');

select tests.authenticate_as('admin@sd.test');
select throws_ok($$ select public.delete_organization((select a from o)) $$, '42501', null, 'an admin cannot delete the organization');
reset role;

select tests.authenticate_as('owner@sd.test');
select lives_ok($$ select public.delete_organization((select a from o)) $$, 'its owner deletes it');
select is_empty($$ select 1 from public.organizations $$, 'it is gone for the owner at once');
reset role;
select tests.authenticate_as('admin@sd.test');
select is_empty($$ select 1 from public.organization_members $$, 'and for every member');
select throws_ok($$ select public.restore_organization((select a from o)) $$, '42501', null, 'only an owner restores it');
reset role;
select is((select deleted_at is not null from public.organizations where id = (select a from o)), true, 'the row is kept, marked deleted');

select tests.authenticate_as('owner@sd.test');
select is((select slug from public.restore_organization((select a from o))), 'soft-del', 'the owner restores it within the retention period');
select isnt_empty($$ select 1 from public.organizations $$, 'and it is back');
select public.delete_organization((select a from o));
reset role;
update public.organizations set deleted_at = now() - interval '31 days' where id = (select a from o); -- free tier keeps 30 days
select tests.authenticate_as('owner@sd.test');
select throws_ok($$ select public.restore_organization((select a from o)) $$, 'TN040', null, 'not after the retention period');
reset role;

select * from finish();
rollback;
