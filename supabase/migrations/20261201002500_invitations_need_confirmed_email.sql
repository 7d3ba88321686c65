-- An invitation is accepted only from a confirmed e-mail address (issue 16, item 14). With
-- confirmations off (config.toml) anyone could sign up as the invited address and take the seat;
-- now accept_invitation refuses an account whose e-mail is not confirmed (TN018). Confirmations
-- themselves arrive with the auth stand-in's sign-up (issue 17); hosted projects should keep
-- "Confirm email" on.

create or replace function public.accept_invitation(token text) returns public.organization_members
language plpgsql volatile security definer set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  my_email text;
  inv public.invitations;
  max_members integer;
  member public.organization_members;
begin
  if me is null then
    raise exception 'sign in to accept an invitation' using errcode = '42501';
  end if;
  select * into inv from public.invitations where token_hash = app.token_hash(accept_invitation.token) for update;
  if inv.id is null then
    raise exception 'invitation not found' using errcode = 'TN010';
  elsif inv.revoked_at is not null then
    raise exception 'the invitation was revoked' using errcode = 'TN013';
  elsif inv.accepted_at is not null then
    raise exception 'the invitation was already used' using errcode = 'TN012';
  elsif inv.expires_at <= now() then
    raise exception 'the invitation expired at %', inv.expires_at using errcode = 'TN011';
  end if;
  select lower(u.email) into my_email from auth.users u where u.id = me;
  if my_email is distinct from inv.email then
    raise exception 'the invitation was sent to another e-mail address' using errcode = 'TN014';
  end if;
  -- The address must be proven the caller's: anyone may sign up with any address while
  -- confirmations are off, and an invitation is addressed to a person, not a string.
  if not exists (select 1 from auth.users u where u.id = me and u.email_confirmed_at is not null) then
    raise exception 'confirm your e-mail address before accepting an invitation' using errcode = 'TN018';
  end if;
  -- Lock the organization so concurrent acceptances cannot overshoot the member limit.
  select t.max_members into max_members
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = inv.org_id and o.deleted_at is null
  for update of o;
  if max_members is null then
    raise exception 'invitation not found' using errcode = 'TN010';
  end if;
  if exists (select 1 from public.organization_members m where m.org_id = inv.org_id and m.user_id = me) then
    raise exception 'already a member of the organization' using errcode = 'TN016';
  end if;
  if (select count(*) from public.organization_members m where m.org_id = inv.org_id) >= max_members then
    raise exception 'the organization has reached its tier''s limit of % members', max_members using errcode = 'TN015';
  end if;

  update public.invitations set accepted_at = now(), accepted_by = me where id = inv.id;
  insert into public.organization_members (org_id, user_id, role) values (inv.org_id, me, inv.role) returning * into member;
  insert into public.user_active_org (user_id, org_id) values (me, inv.org_id) on conflict (user_id) do nothing;
  return member;
end
$$;
