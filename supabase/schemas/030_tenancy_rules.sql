-- The rules of the tenancy core: who may change what in organizations, memberships, permission
-- overrides and active organizations (row-level security, column grants, the owner guard, the
-- override ranks), and the RPCs for what must not be a plain write: founding, choosing, deleting
-- and restoring an organization.

-- An organization always keeps an owner, and only owners make or unmake owners. An owner joins
-- either by founding the organization or by accepting an owner's invitation, which
-- accept_invitation marks accepted (in this transaction) just before adding the member. API keys
-- and jobs are never owners, so one holding members.manage cannot make or unmake one.
create function app.guard_owners() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  acting uuid := (select auth.uid());
begin
  if (acting is not null or app.current_api_key_id() is not null or (app.job_principal()).org_id is not null)
     and ((tg_op <> 'DELETE' and new.role = 'owner') or (tg_op <> 'INSERT' and old.role = 'owner'))
     and (tg_op <> 'DELETE' or old.user_id is distinct from acting)
     and not (tg_op = 'INSERT' and not exists (select 1 from public.organization_members where org_id = new.org_id))
     and not (tg_op = 'INSERT' and exists (select 1 from public.invitations i
                                           where i.org_id = new.org_id and i.accepted_by = new.user_id
                                             and i.role = 'owner' and i.accepted_at = now()))
     and app.role_in(coalesce(new.org_id, old.org_id)) is distinct from 'owner' then
    raise exception 'only an owner can make or unmake owners' using errcode = 'TN002';
  end if;
  if tg_op <> 'INSERT' and old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner')
     and exists (select 1 from public.organizations where id = old.org_id)
     and not exists (select 1 from public.organization_members
                     where org_id = old.org_id and role = 'owner' and user_id <> old.user_id) then
    raise exception 'an organization must keep at least one owner' using errcode = 'TN001';
  end if;
  return coalesce(new, old);
end
$$;
revoke all on function app.guard_owners() from public;
create trigger guard_owners before insert or update of role or delete on public.organization_members
  for each row execute function app.guard_owners();

-- ---------------------------------------------------------------------------------------------
-- Ranks: owner > admin > teacher > student. Owners invite, override, change and remove anyone;
-- everyone else only ranks below their own.
create function app.role_rank(role public.org_role) returns integer
language sql immutable set search_path = ''
as $$ select case role when 'owner' then 4 when 'admin' then 3 when 'teacher' then 2 else 1 end $$;
revoke all on function app.role_rank(public.org_role) from public, anon;

-- The role a live API key acts with in its organization when ranks decide (inviting, overriding):
-- its creator's role there, never above admin, so a key never does what its creator could not
-- and is never an owner. Null when the claims name no live key of that organization or its
-- creator left (whose keys are revoked then anyway).
create function app.api_key_role(org uuid) returns public.org_role
language sql stable security definer set search_path = ''
as $$
  select case m.role when 'owner' then 'admin'::public.org_role else m.role end
  from public.api_keys k
  join public.organization_members m on m.org_id = k.org_id and m.user_id = k.created_by
  where k.id = app.current_api_key_id() and k.org_id = org
$$;
revoke all on function app.api_key_role(uuid) from public;
grant execute on function app.api_key_role(uuid) to authenticated, service_role;

-- May the caller write permission overrides for this member of the organization? A holder of
-- members.manage, for a member of a lower rank than their own; owners for anyone; nobody for
-- themselves. Jobs rank as admins: never over owners or admins. An API key ranks as its creator,
-- never above admin (app.api_key_role), and never writes its creator's overrides: the creator may
-- not write their own, and a key must not lend them a rank they lack.
create function app.may_override_permissions_of(org uuid, member uuid) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  member_role public.org_role := (select m.role from public.organization_members m where m.org_id = org and m.user_id = member);
  caller_role public.org_role;
  key_id uuid := app.current_api_key_id();
begin
  if member_role is null or member = (select auth.uid()) or not app.has_permission(org, 'members.manage') then
    return false;
  end if;
  if key_id is not null then
    if member = (select k.created_by from public.api_keys k where k.id = key_id) then
      return false;
    end if;
    caller_role := app.api_key_role(org);
    return caller_role is not null and app.role_rank(member_role) < app.role_rank(caller_role);
  end if;
  caller_role := app.role_in(org); -- null for jobs
  return caller_role = 'owner' or app.role_rank(member_role) < app.role_rank(coalesce(caller_role, 'admin'));
end
$$;
revoke all on function app.may_override_permissions_of(uuid, uuid) from public;
grant execute on function app.may_override_permissions_of(uuid, uuid) to authenticated, service_role;

-- Ranks decide role changes and removals as they decide overrides: the caller outranks both the
-- member's role and the role given (owners excepted; app.guard_owners keeps an owner and lets only
-- owners make one), and nobody changes their own role, though a member may leave. An API key ranks
-- as its creator, never above admin (app.api_key_role), and never acts on its creator; a job ranks
-- as an admin. Only requests are ranked (the role authenticated naming a user, a key or a job), not
-- the service nor the database itself (cascades, the purge). The policy has already confined the
-- caller to organizations where they hold members.manage.
create function app.guard_role_ranks() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  acting uuid := (select auth.uid());
  key_id uuid := app.current_api_key_id();
  caller_role public.org_role;
begin
  if current_setting('role') <> 'authenticated' or (acting is null and key_id is null and (app.job_principal()).org_id is null) then
    return coalesce(new, old);
  end if;
  if tg_op = 'DELETE' and old.user_id = acting then
    return old;
  end if;
  if old.user_id = acting or old.user_id = (select k.created_by from public.api_keys k where k.id = key_id) then
    raise exception 'nobody changes their own role (an API key, its creator''s)' using errcode = 'TN005';
  end if;
  caller_role := case when acting is not null then app.role_in(old.org_id)
                      when key_id is not null then app.api_key_role(old.org_id)
                      else 'admin' end;
  if caller_role is distinct from 'owner' then
    if caller_role is null or app.role_rank(old.role) >= app.role_rank(caller_role) then
      raise exception 'a % cannot % a %', coalesce(caller_role::text, 'non-member'),
        case tg_op when 'DELETE' then 'remove' else 'change the role of' end, old.role using errcode = 'TN004';
    elsif tg_op = 'UPDATE' and app.role_rank(new.role) >= app.role_rank(caller_role) then
      raise exception 'a % cannot make anyone a %', caller_role, new.role using errcode = 'TN004';
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke all on function app.guard_role_ranks() from public;
create trigger guard_role_ranks before update of role or delete on public.organization_members
  for each row execute function app.guard_role_ranks();

-- An override's created_by and created_at are the writing user and the time of writing,
-- whatever the client sent, and never change afterwards (but for deleting that user, as in
-- app.stamp_row).
create function app.stamp_override_author() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.created_by := (select auth.uid());
    new.created_at := now();
  else
    if new.created_by is distinct from old.created_by
       and not (new.created_by is null and app.user_is_deleted(old.created_by)) then
      new.created_by := old.created_by;
    end if;
    new.created_at := old.created_at;
  end if;
  return new;
end
$$;
revoke all on function app.stamp_override_author() from public;
create trigger stamp_override_author before insert or update on public.member_permissions
  for each row execute function app.stamp_override_author();

-- ---------------------------------------------------------------------------------------------
-- Row-level security
alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
alter table public.permissions enable row level security;
alter table public.role_permissions enable row level security;
alter table public.member_permissions enable row level security;
alter table public.user_active_org enable row level security;

-- Writes that must go through RPCs are not granted at all; the rest is column-limited.
revoke all on public.organizations, public.organization_members, public.permissions, public.role_permissions,
              public.member_permissions, public.user_active_org from anon, authenticated;
grant select, update (name, settings, coppa, ferpa, data_region) on public.organizations to authenticated;
grant select, delete, update (role) on public.organization_members to authenticated;
grant select on public.permissions, public.role_permissions, public.user_active_org to authenticated;
grant select, insert, update, delete on public.member_permissions to authenticated;

create policy "members see their organizations" on public.organizations
  for select to authenticated using (id = any (array(select app.user_org_ids())));
create policy "settings managers change their organization" on public.organizations
  for update to authenticated
  using (id = any (array(select app.org_ids_with_permission('settings.manage'))))
  with check (id = any (array(select app.org_ids_with_permission('settings.manage'))));

create policy "members see who else is in their organizations" on public.organization_members
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));
create policy "member managers change roles" on public.organization_members
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('members.manage'))))
  with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))));
create policy "member managers remove members, and members may leave" on public.organization_members
  for delete to authenticated
  using (user_id = (select auth.uid()) or org_id = any (array(select app.org_ids_with_permission('members.manage'))));

create policy "signed-in users read the permission catalog" on public.permissions
  for select to authenticated using (true);
create policy "signed-in users read role defaults" on public.role_permissions
  for select to authenticated using (true);

create policy "members see their own overrides, managers see all of their organization's" on public.member_permissions
  for select to authenticated
  using (user_id = (select auth.uid()) or org_id = any (array(select app.org_ids_with_permission('members.manage'))));
create policy "member managers grant permissions to lower ranks" on public.member_permissions
  for insert to authenticated
  with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))) and app.may_override_permissions_of(org_id, user_id));
create policy "member managers change lower ranks' grants" on public.member_permissions
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('members.manage'))) and app.may_override_permissions_of(org_id, user_id))
  with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))) and app.may_override_permissions_of(org_id, user_id));
create policy "member managers remove lower ranks' grants" on public.member_permissions
  for delete to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('members.manage'))) and app.may_override_permissions_of(org_id, user_id));

create policy "users see their own active organization" on public.user_active_org
  for select to authenticated using (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- RPCs
-- A new organization starts on the free tier: the tier decides limits and price, so only the
-- service (billing) changes it, never the creating user.
create function public.create_organization(name text, slug text)
returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  org public.organizations;
begin
  if me is null then
    raise exception 'sign in to create an organization' using errcode = '42501';
  end if;
  insert into public.organizations (name, slug) values (create_organization.name, create_organization.slug) returning * into org;
  insert into public.organization_members (org_id, user_id, role) values (org.id, me, 'owner');
  insert into public.user_active_org (user_id, org_id) values (me, org.id) on conflict (user_id) do nothing;
  return org;
end
$$;

create function public.set_active_organization(org_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
begin
  if me is null then
    raise exception 'sign in to choose an organization' using errcode = '42501';
  end if;
  if app.role_in(set_active_organization.org_id) is null then
    raise exception 'not a member of organization %', set_active_organization.org_id using errcode = 'TN003';
  end if;
  insert into public.user_active_org (user_id, org_id) values (me, set_active_organization.org_id)
  on conflict (user_id) do update set org_id = excluded.org_id, updated_at = now();
end
$$;

revoke all on function public.create_organization(text, text), public.set_active_organization(uuid) from public, anon;
grant execute on function public.create_organization(text, text), public.set_active_organization(uuid) to authenticated;

-- Deleting an organization is soft: it disappears for everyone at once (every helper ignores
-- organizations with deleted_at set) and an owner can restore it within the tier's retention
-- period. The worker purges it for good after that period (app.purge_organization).
create function public.delete_organization(org_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if app.role_in(delete_organization.org_id) is distinct from 'owner' then
    raise exception 'only an owner can delete organization %', delete_organization.org_id using errcode = '42501';
  end if;
  update public.organizations set deleted_at = now() where id = delete_organization.org_id;
  -- Tokens minted from now on fall back to another organization (the hook skips deleted ones).
  delete from public.user_active_org where user_active_org.org_id = delete_organization.org_id;
end
$$;

create function public.restore_organization(org_id uuid) returns public.organizations
language plpgsql volatile security definer set search_path = ''
as $$
declare
  org public.organizations;
  retention integer;
begin
  select o.* into org from public.organizations o
  join public.organization_members m on m.org_id = o.id and m.user_id = (select auth.uid()) and m.role = 'owner'
  where o.id = restore_organization.org_id and o.deleted_at is not null
  for update of o;
  if org.id is null then
    raise exception 'no deleted organization % that you own', restore_organization.org_id using errcode = '42501';
  end if;
  select t.retention_days into retention from public.subscription_tiers t where t.tier = org.tier;
  if org.deleted_at < now() - make_interval(days => retention) then
    raise exception 'organization % is past its % day retention period', org.id, retention using errcode = 'TN040';
  end if;
  update public.organizations set deleted_at = null where id = org.id returning * into org;
  return org;
end
$$;

revoke all on function public.delete_organization(uuid), public.restore_organization(uuid) from public, anon;
grant execute on function public.delete_organization(uuid), public.restore_organization(uuid) to authenticated;

-- The member directory: an organization's members by name, address and role, for its members
-- only (user ids mean nothing to people). Addresses are personal data: holders of members.invite or
-- members.manage (teachers, admins and owners by default) see every member's, as they invite and
-- manage people; anyone else (students) sees their own and the staff's (teachers, admins, owners:
-- whom a student contacts), never another student's. Names are the accounts' full_name (user
-- metadata, set by each person; shown as text), at most 100 characters. API keys, jobs and the
-- service are not members and are refused.
create function public.organization_members_directory(org_id uuid)
returns table (user_id uuid, display_name text, email text, role public.org_role, joined_at timestamptz)
language plpgsql stable security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  me uuid := (select auth.uid());
  org uuid := organization_members_directory.org_id;
  sees_all boolean;
begin
  if me is null or app.role_in(org) is null then
    raise exception 'not a member of organization %', org using errcode = '42501';
  end if;
  sees_all := app.has_permission(org, 'members.invite') or app.has_permission(org, 'members.manage');
  return query
  select m.user_id, nullif(left(btrim(u.raw_user_meta_data ->> 'full_name'), 100), ''),
         case when sees_all or m.user_id = me or m.role <> 'student' then u.email::text end,
         m.role, m.created_at
  from public.organization_members m join auth.users u on u.id = m.user_id
  where m.org_id = org
  order by app.role_rank(m.role) desc, lower(btrim(u.raw_user_meta_data ->> 'full_name')) nulls last, m.created_at, m.user_id;
end
$$;
revoke all on function public.organization_members_directory(uuid) from public, anon;
grant execute on function public.organization_members_directory(uuid) to authenticated;
