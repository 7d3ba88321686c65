-- Jobs as tenant principals, enqueueing from SQL, and the job admin RPCs' permission checks.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(14);

select tests.create_user(e) from unnest(array['owner@jq.test', 'student@jq.test', 'owner@jr.test']) e;
create temp table o as select tests.create_org('owner@jq.test', 'jobs-q') a, tests.create_org('owner@jr.test', 'jobs-r') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'student@jq.test', 'student');

create function pg_temp.as_job(org uuid, scopes text[]) returns void language sql as $$
  select tests.act_as('authenticated', jsonb_build_object('job_id', gen_random_uuid(), 'job_org_id', org, 'job_scopes', to_jsonb(scopes)))
$$;

-- A job acting for organization A
select pg_temp.as_job((select a from o), array['org.read', 'members.invite']);
select results_eq($$ select slug from public.organizations $$, array['jobs-q'], 'a job sees its own organization only');
select ok(app.has_permission((select a from o), 'members.invite'), 'it holds the scopes its registry entry declares');
select ok(not app.has_permission((select a from o), 'settings.manage'), 'and no others');
select ok(not app.has_permission((select b from o), 'org.read'), 'and nothing in another organization');
select is_empty($$ update public.organizations set name = 'x' returning 1 $$, 'it cannot change what its scopes do not allow');
reset role;

-- Job claims never widen a signed-in user's access
select tests.act_as('authenticated', jsonb_build_object('sub', tests.user_id('student@jq.test'), 'job_id', gen_random_uuid(),
                                                        'job_org_id', (select b from o), 'job_scopes', '["settings.manage"]'::jsonb));
select results_eq($$ select slug from public.organizations $$, array['jobs-q'], 'a user''s token with job claims still sees only the user''s organizations');
select ok(not app.has_permission((select b from o), 'settings.manage'), 'and gains nothing from them');
reset role;

-- A deleted organization's job sees nothing
update public.organizations set deleted_at = now() where id = (select b from o);
select pg_temp.as_job((select b from o), array['org.read']);
select is_empty($$ select 1 from public.organizations $$, 'a job for a deleted organization sees nothing');
reset role;

-- Enqueueing from SQL
select tests.as_service();
select throws_ok($$ select app.enqueue_job('no.such-queue', '{"org_id": null}') $$, 'JB001', null, 'unknown queues are refused');
select throws_ok($$ select app.enqueue_job('tenant.delete', '{"org": 1}') $$, 'JB002', null, 'a payload without org_id is refused');
select isnt(app.enqueue_job('tenant.delete', jsonb_build_object('org_id', (select a from o)), start_after_seconds => 3600), null,
  'the service enqueues a registered job');
reset role;
select tests.authenticate_as('owner@jq.test');
select throws_ok($$ select app.enqueue_job('tenant.delete', '{"org_id": null}') $$, '42501', null, 'users cannot enqueue directly');
select isnt_empty($$ select 1 from public.list_jobs((select a from o)) where queue = 'tenant.delete' $$, 'an owner lists the organization''s jobs');
reset role;
select tests.authenticate_as('student@jq.test');
select throws_ok($$ select * from public.list_jobs((select a from o)) $$, '42501', null, 'a student may not');
reset role;

select * from finish();
rollback;
