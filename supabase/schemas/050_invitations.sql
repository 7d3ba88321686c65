-- Invitations by e-mail with a role. The token is single-use and shown once (only its SHA-256 is
-- stored); accepting checks the token, its expiry, the invitee's confirmed e-mail and the tier's
-- member limit, then adds the membership in the same transaction. A member who leaves takes the
-- API keys and open invitations they made in that organization with them.

create table public.invitations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  email text not null check (email = lower(btrim(email)) and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and length(email) <= 320),
  role public.org_role not null,
  token_hash bytea not null unique check (length(token_hash) = 32),
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  check (accepted_at is null or revoked_at is null)
);
create index invitations_org_idx on public.invitations (org_id, created_at desc);
create index invitations_accepted_by_idx on public.invitations (accepted_by) where accepted_by is not null;
create index invitations_created_by_idx on public.invitations (created_by) where created_by is not null;
create index invitations_revoked_by_idx on public.invitations (revoked_by) where revoked_by is not null;
create index invitations_updated_by_idx on public.invitations (updated_by) where updated_by is not null;
-- One open invitation per address and organization; inviting again replaces it.
create unique index invitations_one_open_per_email on public.invitations (org_id, email)
  where accepted_at is null and revoked_at is null;
create index invitations_email_idx on public.invitations (email) where accepted_at is null and revoked_at is null;

create trigger stamp_row before insert or update on public.invitations
  for each row execute function app.stamp_row();

-- ---------------------------------------------------------------------------------------------
alter table public.invitations enable row level security;
revoke all on public.invitations from anon, authenticated;
grant select (id, org_id, email, role, expires_at, accepted_at, accepted_by, revoked_at, revoked_by,
              created_at, updated_at, created_by, updated_by) on public.invitations to authenticated;

-- The caller's address once confirmed, from auth.users: the token's email claim is set at sign-up,
-- before anyone proved the address is theirs, so it cannot decide who sees an invitation.
create function app.my_confirmed_email() returns text
language sql stable security definer set search_path = ''
as $$
  select lower(u.email) from auth.users u where u.id = (select auth.uid()) and u.email_confirmed_at is not null
$$;
revoke all on function app.my_confirmed_email() from public;
grant execute on function app.my_confirmed_email() to authenticated;

create policy "inviters see their organization's invitations" on public.invitations
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('members.invite'))));
create policy "invitees see open invitations to their confirmed e-mail" on public.invitations
  for select to authenticated
  using (accepted_at is null and revoked_at is null and email = (select app.my_confirmed_email()));

-- ---------------------------------------------------------------------------------------------
-- RPCs
create function public.create_invitation(org_id uuid, email text, role public.org_role,
                                         valid_for interval default interval '7 days')
returns table (invitation_id uuid, token text, expires_at timestamptz)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  -- a member's role, or the role an API key acts with (its creator's, never above admin)
  my_role public.org_role := coalesce(app.role_in(create_invitation.org_id), app.api_key_role(create_invitation.org_id));
  address text := lower(btrim(create_invitation.email));
  secret text := app.random_token('inv_');
  max_members integer;
begin
  if (me is null and app.current_api_key_id() is null) or my_role is null
     or not app.has_permission(create_invitation.org_id, 'members.invite') then
    raise exception 'members.invite is required in organization %', create_invitation.org_id using errcode = '42501';
  end if;
  if my_role <> 'owner' and app.role_rank(create_invitation.role) >= app.role_rank(my_role) then
    raise exception 'a % cannot invite a %', my_role, create_invitation.role using errcode = 'TN017';
  end if;
  if valid_for < interval '5 minutes' or valid_for > interval '30 days' then
    raise exception 'valid_for must be between 5 minutes and 30 days' using errcode = '22023';
  end if;
  if exists (select 1 from public.organization_members m join auth.users u on u.id = m.user_id
             where m.org_id = create_invitation.org_id and lower(u.email) = address) then
    raise exception '% is already a member', address using errcode = 'TN016';
  end if;
  select t.max_members into max_members
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier where o.id = create_invitation.org_id;
  if (select count(*) from public.organization_members m where m.org_id = create_invitation.org_id) >= max_members then
    raise exception 'the organization has reached its tier''s limit of % members', max_members using errcode = 'TN015';
  end if;

  -- Inviting the same address again for the same role replaces the open invitation (a resend with
  -- a new token). For another role it is refused: a replaced teacher invitation once let a person
  -- join as a student unnoticed. The inviter revokes the open one first if that is what they mean.
  if exists (select 1 from public.invitations i
             where i.org_id = create_invitation.org_id and i.email = address and i.accepted_at is null and i.revoked_at is null
               and i.expires_at > now() and i.role <> create_invitation.role) then
    raise exception '% has a pending invitation for another role: revoke it first', address using errcode = 'TN019';
  end if;
  update public.invitations i set revoked_at = now(), revoked_by = me
  where i.org_id = create_invitation.org_id and i.email = address and i.accepted_at is null and i.revoked_at is null;

  return query
  insert into public.invitations as i (org_id, email, role, token_hash, expires_at)
  values (create_invitation.org_id, address, create_invitation.role, app.token_hash(secret), now() + valid_for)
  returning i.id, secret, i.expires_at;
end
$$;

create function public.accept_invitation(token text) returns public.organization_members
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

create function public.revoke_invitation(invitation_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  inv public.invitations;
  my_role public.org_role;
begin
  select * into inv from public.invitations where id = revoke_invitation.invitation_id for update;
  -- a member's role, or the role an API key acts with (its creator's, never above admin)
  my_role := coalesce(app.role_in(inv.org_id), app.api_key_role(inv.org_id));
  if inv.id is null or my_role is null or not app.has_permission(inv.org_id, 'members.invite') then
    raise exception 'invitation % not found', revoke_invitation.invitation_id using errcode = 'TN010';
  elsif inv.accepted_at is not null then
    raise exception 'the invitation was already used' using errcode = 'TN012';
  end if;
  -- Withdrawing asks the rank create_invitation asks for the role: a teacher who could withdraw
  -- the owner's admin invitation could then invite the same address as a student.
  if my_role <> 'owner' and app.role_rank(inv.role) >= app.role_rank(my_role) then
    raise exception 'a % cannot revoke an invitation for a %', my_role, inv.role using errcode = 'TN017';
  end if;
  update public.invitations set revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, (select auth.uid()))
  where id = inv.id;
end
$$;

revoke all on function public.create_invitation(uuid, text, public.org_role, interval), public.accept_invitation(text),
                       public.revoke_invitation(uuid) from public, anon;
grant execute on function public.create_invitation(uuid, text, public.org_role, interval), public.accept_invitation(text),
                          public.revoke_invitation(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- A member who leaves takes their keys and open invitations in that organization with them
-- (revoked_by null: the database did it), so the broker disconnects those keys at once.
create function app.revoke_departed_members_credentials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.api_keys set revoked_at = now(), revoked_by = null
  where org_id = old.org_id and created_by = old.user_id and revoked_at is null;
  update public.invitations set revoked_at = now(), revoked_by = null
  where org_id = old.org_id and created_by = old.user_id and accepted_at is null and revoked_at is null;
  return null;
end
$$;
revoke all on function app.revoke_departed_members_credentials() from public;
create trigger revoke_departed_members_credentials after delete on public.organization_members
  for each row execute function app.revoke_departed_members_credentials();

-- A deleted user leaves every organization at once: their keys and open invitations are revoked
-- before the delete, while created_by still names them (the foreign keys then clear it, and the
-- memberships' own trigger, firing after those actions, would find nothing).
create function app.revoke_deleted_users_credentials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.api_keys set revoked_at = now(), revoked_by = null where created_by = old.id and revoked_at is null;
  update public.invitations set revoked_at = now(), revoked_by = null
  where created_by = old.id and accepted_at is null and revoked_at is null;
  return old;
end
$$;
revoke all on function app.revoke_deleted_users_credentials() from public;
create trigger revoke_deleted_users_credentials before delete on auth.users
  for each row execute function app.revoke_deleted_users_credentials();
