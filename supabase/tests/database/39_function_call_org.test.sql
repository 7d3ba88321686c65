-- A function call from SQL names its organization in an X-Org-Id header (app.call_function takes
-- it from the payload's org_id): every tenant's calls go to one host, and the local net worker lets
-- each organization hold only its share of that host's requests (tests/integration/net-worker.test.ts).
-- The queue rows are read before commit, so nothing here is sent.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(7);

select isnt(app.vault_secret('project_url'), null, 'the Vault secrets function calls need are set');

create function pg_temp.last_call() returns jsonb language sql as $$
  select headers from net.http_request_queue order by id desc limit 1
$$;

create temp table o as select gen_random_uuid() as some_org;
select app.call_function('health', jsonb_build_object('org_id', (select some_org from o)));
select is(pg_temp.last_call() ->> 'X-Org-Id', (select some_org::text from o), 'a payload''s org_id goes out as X-Org-Id');
select app.call_function('health', '{"type": "SCHEDULE"}');
select ok(not pg_temp.last_call() ? 'X-Org-Id', 'a call for no organization names none');

select app.request_file_processing(jsonb_build_object('bucket_id', 'files',
  'name', (select some_org from o) || '/2026/01/01/' || gen_random_uuid() || '-notes.txt'));
select is(pg_temp.last_call() ->> 'X-Org-Id', (select some_org::text from o), 'file processing names the object''s organization');

select tests.create_user('owner@fc.test');
create temp table org as select tests.create_org('owner@fc.test', 'function-call-org') id;
select app.notify((select id from org), 'announcement.posted', 'Hello', 'Welcome', '{}', '{"everyone": true}');
select is(pg_temp.last_call() ->> 'X-Org-Id', (select id::text from org), 'a notification batch''s dispatch names its organization');

update public.notification_deliveries set next_attempt_at = now() - interval '1 minute' where org_id = (select id from org);
select app.sweep_notifications();
select ok(exists (select 1 from net.http_request_queue
                  where headers ->> 'X-Org-Id' = (select id::text from org) and convert_from(body, 'UTF8')::jsonb ->> 'type' = 'SWEEP'),
          'the sweep''s call for that batch names its organization');
-- a deleted organization's deliveries wait for its purge: swept every minute, they would take the
-- run's places from live organizations' retries
update public.organizations set deleted_at = now() where id = (select id from org);
create temp table before_sweep as select coalesce(max(id), 0) as last_id from net.http_request_queue;
select app.sweep_notifications();
select ok(not exists (select 1 from net.http_request_queue
                      where id > (select last_id from before_sweep) and headers ->> 'X-Org-Id' = (select id::text from org)),
          'the sweep leaves a deleted organization''s deliveries alone');
select * from finish();
rollback;
