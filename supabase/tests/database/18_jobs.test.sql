-- Jobs as tenant principals, enqueueing from SQL, and the job admin RPCs' permission checks.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(18);

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
select isnt(app.enqueue_job('tenant.delete', jsonb_build_object('org_id', (select a from o)), start_after_seconds => 3600,
                            singleton_key => 'tenant.delete:' || (select a from o)), null,
  'the service enqueues a registered job');
select is(app.enqueue_job('tenant.delete', jsonb_build_object('org_id', (select a from o)), start_after_seconds => 3600,
                          singleton_key => 'tenant.delete:' || (select a from o)), null,
  'a second job with the key of one that has not started is skipped (tenant.delete has pg-boss''s short policy): null, as pg-boss''s send');
reset role;

-- Two dead letters of that deletion, as pg-boss writes them: the failed job's key and source queue
create temp table dead as
select app.enqueue_job('tenant.dead-letter', jsonb_build_object('org_id', (select a from o)), start_after_seconds => 3600,
                       singleton_key => 'tenant.delete:' || (select a from o)) id
from generate_series(1, 2);
grant select on dead to authenticated;
update pgboss.job set source_name = 'tenant.delete', source_id = gen_random_uuid() where id in (select id from dead);
select tests.authenticate_as('owner@jq.test');
select throws_ok($$ select public.replay_dead_letter((select min(id::text)::uuid from dead)) $$, 'JB004', null,
  'a dead letter is not replayed while a job with its key waits');
reset role;
update pgboss.job set state = 'cancelled', completed_on = now()
where name = 'tenant.delete' and singleton_key = 'tenant.delete:' || (select a from o);
select tests.authenticate_as('owner@jq.test');
create temp table replayed as select public.replay_dead_letter((select min(id::text)::uuid from dead)) id;
reset role;
select is((select singleton_key from pgboss.job where id = (select id from replayed)), 'tenant.delete:' || (select a from o),
  'then it is replayed with its key');
select tests.authenticate_as('owner@jq.test');
select throws_ok($$ select public.replay_dead_letter((select max(id::text)::uuid from dead)) $$, 'JB004', null,
  'and the other dead letter of that key is not, while the replay waits');
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
