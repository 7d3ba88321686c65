-- The platform baseline's role semantics, checked as the roles real requests use.
begin;
create extension if not exists pgtap with schema extensions;
select plan(22);

-- A scratch tenant-like table, owned by postgres like every app table; RLS on, one policy.
create table public._roles_probe (id int primary key, owner uuid not null);
alter table public._roles_probe enable row level security;
grant select on public._roles_probe to anon, authenticated; -- the test is about RLS, not grants
create policy "owners see their rows" on public._roles_probe for select to authenticated
  using (owner = (select auth.uid()));
insert into public._roles_probe values
  (1, '11111111-1111-4111-8111-111111111111'), (2, '22222222-2222-4222-8222-222222222222');

-- Role attributes as on hosted Supabase.
select ok((select rolbypassrls from pg_roles where rolname = 'service_role'), 'service_role bypasses RLS');
select ok(not (select rolbypassrls from pg_roles where rolname = 'authenticated'), 'authenticated does not bypass RLS');
select ok(not (select rolbypassrls from pg_roles where rolname = 'anon'), 'anon does not bypass RLS');
select ok(not (select rolsuper from pg_roles where rolname = 'authenticated') and not (select rolsuper from pg_roles where rolname = 'anon')
          and not (select rolsuper from pg_roles where rolname = 'service_role'), 'no API role is a superuser');
select ok(not (select rolcanlogin from pg_roles where rolname = 'anon'), 'anon cannot log in directly');
select ok(pg_has_role('authenticator', 'authenticated', 'member'), 'authenticator can switch to authenticated');

-- anon
set local role anon;
select set_config('request.jwt.claims', '{"role":"anon","iss":"supabase-demo"}', true);
select is(auth.uid(), null, 'auth.uid() is null for anon');
select is(auth.role(), 'anon', 'auth.role() reads the role claim');
select is((select count(*)::int from public._roles_probe), 0, 'anon sees no row under RLS');
select throws_ok($$ select * from vault.decrypted_secrets $$, '42501', null, 'anon cannot read vault secrets');

-- authenticated, modern claims setting
reset role;
set local role authenticated;
select set_config('request.jwt.claims',
  '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated","email":"a@x.test","app_metadata":{"k":"v"}}', true);
select is(auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid, 'auth.uid() reads request.jwt.claims');
select is(auth.email(), 'a@x.test', 'auth.email() reads the email claim');
select is(auth.jwt() -> 'app_metadata' ->> 'k', 'v', 'auth.jwt() returns the whole claims object');
select results_eq($$ select id from public._roles_probe $$, array[1], 'authenticated sees only the rows its policy allows');
select throws_ok($$ select * from auth.users $$, '42501', null, 'authenticated cannot read auth.users');
select throws_ok($$ select * from net._http_response $$, '42501', null, 'authenticated cannot read pg_net responses');
select throws_ok($$ select * from cron.job $$, '42501', null, 'authenticated cannot read cron jobs');

-- authenticated, the older per-claim settings (PostgREST < 9) still resolve
select set_config('request.jwt.claims', '', true);
select set_config('request.jwt.claim.sub', '22222222-2222-4222-8222-222222222222', true);
select set_config('request.jwt.claim.role', 'authenticated', true);
select is(auth.uid(), '22222222-2222-4222-8222-222222222222'::uuid, 'auth.uid() falls back to request.jwt.claim.sub');
select results_eq($$ select id from public._roles_probe $$, array[2], 'the legacy claim drives RLS too');

-- service_role
reset role;
set local role service_role;
select set_config('request.jwt.claims', '{"role":"service_role"}', true);
select is((select count(*)::int from public._roles_probe), 2, 'service_role sees every row');
select lives_ok($$ select count(*) from vault.decrypted_secrets $$, 'service_role may read vault.decrypted_secrets');
select lives_ok($$ select net.http_get('http://127.0.0.1:9/never-sent') $$, 'service_role may queue pg_net requests');

select * from finish();
rollback;
