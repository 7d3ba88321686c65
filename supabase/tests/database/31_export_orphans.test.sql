-- Issue 16, item 12: an export whose job ended without finishing it no longer blocks the next one,
-- and an over-long request id no longer makes a job the worker refuses.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(5);

select tests.create_user('owner@ex.test');
create temp table o as select tests.create_org('owner@ex.test', 'export-orphans') a;
grant select on o to authenticated;
create temp table e (n int, id uuid, job_id uuid);
grant all on e to authenticated;

select tests.authenticate_as('owner@ex.test');
select tests.set_headers('203.0.113.9', 'test', repeat('r', 300));
insert into e select 1, x.id, x.job_id from public.request_data_export((select a from o)) x;
reset role;
select ok((select length(data ->> 'correlation_id') between 1 and 128 from pgboss.job where id = (select job_id from e where n = 1)),
          'a request id over 128 characters does not become the job''s correlation id');

select tests.authenticate_as('owner@ex.test');
select throws_ok($$ select public.request_data_export((select a from o)) $$, 'TN050', null, 'one export at a time while its job is alive');
reset role;

-- the job fails for good (or is cancelled) without touching the export
update pgboss.job set state = 'failed' where id = (select job_id from e where n = 1);
select tests.authenticate_as('owner@ex.test');
select lives_ok($$ insert into e select 2, x.id, x.job_id from public.request_data_export((select a from o)) x $$,
                'an export whose job ended no longer blocks the next');
reset role;
select is((select status from public.data_exports where id = (select id from e where n = 1)), 'failed', 'the orphan is marked failed');
select alike((select error from public.data_exports where id = (select id from e where n = 1)), '%(failed)%', 'with the reason');

select * from finish();
rollback;
