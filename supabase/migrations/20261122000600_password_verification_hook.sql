-- Password verification attempt hook (hosted contract: event {user_id, valid} -> {decision,
-- message, should_logout_user}), run by the auth server as supabase_auth_admin after each
-- password check. After `max_failures` failed attempts within `window`, the account is locked
-- for `lockout`: every attempt, even with the right password, is rejected until it ends.

create table app.password_lockout_policy (
  id boolean primary key default true check (id),
  max_failures integer not null check (max_failures between 1 and 100),
  failure_window interval not null check (failure_window between interval '1 second' and interval '1 day'),
  lockout interval not null check (lockout between interval '1 second' and interval '1 day')
);
insert into app.password_lockout_policy (max_failures, failure_window, lockout)
values (5, interval '15 minutes', interval '15 minutes');

create table app.password_failures (
  user_id uuid primary key references auth.users (id) on delete cascade,
  failures integer not null check (failures >= 0),
  window_started_at timestamptz not null,
  locked_until timestamptz
);

alter table app.password_lockout_policy enable row level security;
alter table app.password_failures enable row level security;
revoke all on app.password_lockout_policy, app.password_failures from public, anon, authenticated, service_role;
grant select on app.password_lockout_policy to supabase_auth_admin;
grant select, insert, update, delete on app.password_failures to supabase_auth_admin;
create policy "the auth server reads the lockout policy" on app.password_lockout_policy
  for select to supabase_auth_admin using (true);
create policy "the auth server keeps failure counts" on app.password_failures
  for all to supabase_auth_admin using (true) with check (true);

create function public.hook_password_verification_attempt(event jsonb) returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
  uid uuid := (event ->> 'user_id')::uuid;
  valid boolean := coalesce((event ->> 'valid')::boolean, false);
  rules app.password_lockout_policy;
  state app.password_failures;
begin
  select * into rules from app.password_lockout_policy;
  select * into state from app.password_failures where user_id = uid for update;

  if state.locked_until > now() then
    return jsonb_build_object('decision', 'reject', 'should_logout_user', false,
      'message', 'Too many failed sign-in attempts. Try again later.');
  end if;

  if valid then
    delete from app.password_failures where user_id = uid;
    return jsonb_build_object('decision', 'continue');
  end if;

  insert into app.password_failures as f (user_id, failures, window_started_at)
  values (uid, 1, now())
  on conflict (user_id) do update
    set failures = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                        then f.failures + 1 else 1 end,
        window_started_at = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                                 then f.window_started_at else now() end,
        locked_until = null
  returning * into state;

  if state.failures >= rules.max_failures then
    update app.password_failures set locked_until = now() + rules.lockout where user_id = uid;
    return jsonb_build_object('decision', 'reject', 'should_logout_user', true,
      'message', 'Too many failed sign-in attempts. Try again later.');
  end if;
  -- A wrong password below the limit: the auth server answers "invalid credentials" itself.
  return jsonb_build_object('decision', 'continue');
end
$$;

grant execute on function public.hook_password_verification_attempt(jsonb) to supabase_auth_admin;
revoke execute on function public.hook_password_verification_attempt(jsonb) from authenticated, anon, service_role, public;
-- The access token hook too: hosted default privileges had granted it to service_role.
revoke execute on function public.custom_access_token_hook(jsonb) from service_role;
