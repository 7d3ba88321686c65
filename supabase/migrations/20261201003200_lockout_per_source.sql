-- The password lockout locks an account for the source that failed, not for everyone, and says
-- nothing an attacker could tell apart (issue 16, item 13). Before, anyone who knew an e-mail
-- address could keep its account locked for its owner (five wrong passwords every fifteen
-- minutes, from anywhere), signed the owner out of every session at each lock, and learnt which
-- addresses have accounts (a locked account answered "Too many failed sign-in attempts", an
-- unknown address "Invalid login credentials").
-- - Failures are counted per account and source: the request's address, which GoTrue sends in the
--   hook's metadata (metadata.ip_address; the local auth stand-in does the same). The owner signing
--   in from elsewhere is not locked out by an attacker's failures.
-- - A rejection reads exactly as a wrong password does ("Invalid login credentials"), whether or
--   not the account exists or is locked, and signs nobody out.
-- - Guessing spread over many addresses is bounded by GoTrue's per-address rate limits
--   (config.toml [auth.rate_limit]), not by locking the owner out.

alter table app.password_failures add column source text not null default '';
alter table app.password_failures drop constraint password_failures_pkey;
alter table app.password_failures add primary key (user_id, source);

create or replace function public.hook_password_verification_attempt(event jsonb) returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
  uid uuid := (event ->> 'user_id')::uuid;
  valid boolean := coalesce((event ->> 'valid')::boolean, false);
  src text := left(coalesce(event -> 'metadata' ->> 'ip_address', ''), 64);
  rules app.password_lockout_policy;
  state app.password_failures;
  -- GoTrue's own answer to a wrong password: a lock must not be told apart from it
  rejected constant jsonb := jsonb_build_object('decision', 'reject', 'should_logout_user', false,
                                                'message', 'Invalid login credentials');
begin
  select * into rules from app.password_lockout_policy;
  select * into state from app.password_failures where user_id = uid and source = src for update;

  if state.locked_until > now() then
    return rejected;
  end if;

  if valid then
    delete from app.password_failures where user_id = uid and source = src;
    return jsonb_build_object('decision', 'continue');
  end if;

  insert into app.password_failures as f (user_id, source, failures, window_started_at)
  values (uid, src, 1, now())
  on conflict (user_id, source) do update
    set failures = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                        then f.failures + 1 else 1 end,
        window_started_at = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                                 then f.window_started_at else now() end,
        locked_until = null
  returning * into state;

  if state.failures >= rules.max_failures then
    update app.password_failures set locked_until = now() + rules.lockout where user_id = uid and source = src;
    return rejected;
  end if;
  -- A wrong password below the limit: the auth server answers "invalid credentials" itself.
  return jsonb_build_object('decision', 'continue');
end
$$;
