-- The RPC matrix: every function in `public` (found in the catalog, so a new one must join the
-- matrix), called with organization B's objects by another organization's owner, an outsider,
-- anon and B's lowest role (a student), with the exact answer each must get; B's owner is the
-- control that shows the call itself is right. Every call is rolled back, so none leaves a trace.
-- Then the catalog rules on what API roles may execute and hold: anon executes no function outside
-- an allow-list, no API role but the service touches a sequence, no column grant repeats a table
-- grant, and no function body speaks of the history that made it.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(1 + 26 * 5 + 4);

select tests.create_user(e) from unnest(array['owner@rma.test', 'owner@rmb.test', 'student@rmb.test', 'outsider@rm.test',
                                              'invitee@rmb.test']) e;
create temp table b as
  select tests.create_org('owner@rma.test', 'rpc-matrix-a') a, tests.create_org('owner@rmb.test', 'rpc-matrix-b') org,
         tests.create_org('owner@rmb.test', 'rpc-matrix-b-deleted') deleted_org,
         null::uuid invitation, null::text invitation_token, null::uuid api_key, null::text api_key_secret,
         null::uuid file, null::uuid deleted_file, null::uuid job;
grant select on b to anon, service_role;
grant select, update on b to authenticated;
select tests.add_members(o, 'student@rmb.test', 'student') from b, unnest(array[b.org, b.deleted_org]) o;

select tests.authenticate_as('owner@rmb.test');
update b set (invitation, invitation_token) = (select invitation_id, token from public.create_invitation(b.org, 'invitee@rmb.test', 'student'));
update b set (api_key, api_key_secret) = (select api_key_id, api_key from public.create_api_key(b.org, 'B sync', array['org.read']));
update b set file = (select id from public.request_file_upload(b.org, 'kept.txt', 10, 'text/plain'));
update b set deleted_file = (select id from public.request_file_upload(b.org, 'binned.txt', 10, 'text/plain'));
reset role;
update public.files set status = 'clean', sha256 = repeat('0', 64) where id in (select file from b union all select deleted_file from b);
select tests.authenticate_as('owner@rmb.test');
select public.delete_file((select deleted_file from b));
select public.delete_organization((select deleted_org from b));
reset role;
-- a job of B (the worker's queue store exists wherever the stack has run; rolled back, so no worker sees it)
update b set job = app.enqueue_job('tenant.delete', jsonb_build_object('org_id', b.org), start_after_seconds => 3600,
                                   singleton_key => 'tenant.delete:' || b.org)
where to_regclass('pgboss.queue') is not null;

-- Each function: a call naming B's objects, the answer of an attacker from outside B, of B's
-- student, and of B's owner. anon's answer is always 42501: it executes none of them.
create temp table cases (fn regprocedure primary key, call text not null, outsider text not null, student text not null, owner text not null);
insert into cases values
  ('public.create_organization(text, text)', $$select public.create_organization('Matrix new', 'rpc-matrix-new')$$, 'ok', 'ok', 'ok'),
  ('public.set_active_organization(uuid)', $$select public.set_active_organization((select org from b))$$, 'TN003', 'ok', 'ok'),
  ('public.delete_organization(uuid)', $$select public.delete_organization((select org from b))$$, '42501', '42501', 'ok'),
  ('public.restore_organization(uuid)', $$select public.restore_organization((select deleted_org from b))$$, '42501', '42501', 'ok'),
  ('public.create_api_key(uuid, text, text[], timestamptz)', $$select public.create_api_key((select org from b), 'k', array['org.read'])$$,
   '42501', '42501', 'ok'),
  ('public.revoke_api_key(uuid)', $$select public.revoke_api_key((select api_key from b))$$, 'TN026', 'TN026', 'ok'),
  ('public.verify_api_key(text, text)', $$select public.verify_api_key((select api_key_secret from b))$$, '42501', '42501', '42501'),
  ('public.set_api_key_mqtt_topics(uuid, text[])', $$select public.set_api_key_mqtt_topics((select api_key from b), array['devices/+'])$$,
   'TN026', 'TN026', 'ok'),
  ('public.create_invitation(uuid, text, public.org_role, interval)',
   $$select public.create_invitation((select org from b), 'new@rmb.test', 'student')$$, '42501', '42501', 'ok'),
  -- the token reached the wrong person: the address decides
  ('public.accept_invitation(text)', $$select public.accept_invitation((select invitation_token from b))$$, 'TN014', 'TN014', 'TN014'),
  ('public.revoke_invitation(uuid)', $$select public.revoke_invitation((select invitation from b))$$, 'TN010', 'TN010', 'ok'),
  -- members read the directory (a student sees less of it: 42_member_directory); nobody else does
  ('public.organization_members_directory(uuid)', $$select public.organization_members_directory((select org from b))$$,
   '42501', 'ok', 'ok'),
  ('public.custom_access_token_hook(jsonb)',
   $$select public.custom_access_token_hook(jsonb_build_object('user_id', tests.user_id('owner@rmb.test'), 'claims', '{}'::jsonb))$$,
   '42501', '42501', '42501'),
  ('public.hook_password_verification_attempt(jsonb)',
   $$select public.hook_password_verification_attempt(jsonb_build_object('user_id', tests.user_id('owner@rmb.test'), 'valid', false))$$,
   '42501', '42501', '42501'),
  ('public.list_jobs(uuid, text, integer)', $$select public.list_jobs((select org from b))$$, '42501', '42501', 'ok'),
  ('public.cancel_job(uuid)', $$select public.cancel_job((select job from b))$$, 'JB003', 'JB003', 'ok'),
  -- B's owner reaches the job, whose state is what refuses
  ('public.retry_job(uuid)', $$select public.retry_job((select job from b))$$, 'JB003', 'JB003', 'JB004'),
  ('public.replay_dead_letter(uuid)', $$select public.replay_dead_letter((select job from b))$$, 'JB003', 'JB003', 'JB004'),
  ('public.request_data_export(uuid)', $$select public.request_data_export((select org from b))$$, '42501', '42501', 'ok'),
  ('public.request_file_upload(uuid, text, bigint, text)',
   $$select public.request_file_upload((select org from b), 'new.txt', 10, 'text/plain')$$, '42501', '42501', 'ok'),
  ('public.delete_file(uuid)', $$select public.delete_file((select file from b))$$, 'FL005', 'FL005', 'ok'),
  ('public.restore_file(uuid)', $$select public.restore_file((select deleted_file from b))$$, 'FL005', 'FL005', 'ok'),
  ('public.send_notification(uuid, text, text, text, jsonb, jsonb, text, text)',
   $$select public.send_notification((select org from b), 'announcement.posted', 'Hello')$$, '42501', '42501', 'ok'),
  ('public.analytics_series(uuid, text, timestamptz, timestamptz, text)',
   $$select public.analytics_series((select org from b), 'page.viewed', now() - interval '1 day', now())$$, '42501', '42501', 'ok'),
  ('public.analytics_top_events(uuid, timestamptz, timestamptz, integer)',
   $$select public.analytics_top_events((select org from b), now() - interval '1 day', now())$$, '42501', '42501', 'ok'),
  ('public.usage_versus_limits(uuid, date)', $$select public.usage_versus_limits((select org from b))$$, '42501', '42501', 'ok');
grant select on cases to authenticated, anon, service_role;

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p
  where p.pronamespace = 'public'::regnamespace
    and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  except select fn::text from cases
$$, 'every function in public is in the matrix');

-- One call as the current role, always rolled back: 'ok', or the SQLSTATE it was refused with.
create function pg_temp.attempt(statement text) returns text language plpgsql as $$
begin
  execute statement;
  raise exception 'undo' using errcode = 'RB000';
exception
  when sqlstate 'RB000' then return 'ok';
  when others then return sqlstate;
end $$;

create temp table results (actor text, fn text, outcome text, expected text);
grant all on results to authenticated, anon, service_role;
create function pg_temp.run_as(actor text, expected_column text) returns void language plpgsql as $$
begin
  execute format('insert into results select %L, c.fn::text, pg_temp.attempt(c.call), %s from cases c', actor, expected_column);
end $$;

select tests.authenticate_as('owner@rma.test');
select pg_temp.run_as('owner of A', 'c.outsider');
reset role;
select tests.authenticate_as('outsider@rm.test');
select pg_temp.run_as('outsider', 'c.outsider');
reset role;
select tests.as_anon();
select pg_temp.run_as('anon', '''42501''');
reset role;
select tests.authenticate_as('student@rmb.test');
select pg_temp.run_as('student of B', 'c.student');
reset role;
select tests.authenticate_as('owner@rmb.test');
select pg_temp.run_as('owner of B (control)', 'c.owner');
reset role;

select is(r.outcome, r.expected, format('%s: %s', r.actor, r.fn)) from results r order by r.actor, r.fn;

-- anon reaches functions only through the Data API and the policies and defaults its requests
-- evaluate. Allowed: the platform's own (extension members; auth's claim readers and storage's
-- path helpers, which policies call; net and supabase_functions, granted as hosted Supabase grants
-- them, in schemas the Data API does not expose; PostgREST's event trigger functions).
select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname not in ('pg_catalog', 'information_schema', 'tests') and n.nspname !~ '^pg_temp_'
    and has_schema_privilege('anon', n.oid, 'usage') and has_function_privilege('anon', p.oid, 'execute')
    and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
    and p.oid::regprocedure::text <> all (array[
      'auth.uid()', 'auth.jwt()', 'auth.role()', 'auth.email()',
      'storage.foldername(text)', 'storage.filename(text)', 'storage.extension(text)',
      'net.http_get(text,jsonb,jsonb,integer)', 'net.http_post(text,jsonb,jsonb,jsonb,integer)',
      'net.http_delete(text,jsonb,jsonb,integer)', 'net._urlencode_params(text,jsonb)', 'supabase_functions.http_request()',
      'pgrst_ddl_watch()', 'pgrst_drop_watch()'])
  order by 1
$$, 'anon executes no function outside the allow-list');

select is_empty($$
  select format('%s may %s on %s', r.rolname, priv, c.oid::regclass)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join pg_roles r cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) priv
  where c.relkind = 'S' and n.nspname in ('public', 'audit', 'app', 'analytics', 'graphql_public')
    and r.rolname in ('anon', 'authenticated') and has_sequence_privilege(r.oid, c.oid, priv)
$$, 'no request role but the service holds a sequence (no API role inserts where one is used)');

select is_empty($$
  select format('%s holds %s on %s.%s twice', col.grantee::regrole, col.privilege_type, c.oid::regclass, a.attname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attacl is not null
  cross join lateral aclexplode(a.attacl) col
  where n.nspname in ('public', 'audit', 'app', 'analytics')
    and exists (select 1 from aclexplode(c.relacl) t where t.grantee = col.grantee and t.privilege_type = col.privilege_type)
$$, 'no column grant repeats what the table grant gives');

select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'app', 'audit', 'analytics', 'mqtt')
    and p.prosrc ~* '\m(20[0-9]{6})?0{2}[0-9]{4}\M|\mmigration|\missue\M'
$$, 'no function body names a migration or an issue: history belongs in git, not in SQL');

select * from finish();
rollback;
