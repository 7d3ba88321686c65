-- Helpers, triggers, row-level security and RPCs for the tenancy core, and the custom access
-- token hook. Helpers are STABLE SECURITY DEFINER with an empty search_path (every name is
-- qualified) so policies can call them without recursing into the policies they serve.

-- ---------------------------------------------------------------------------------------------
-- Helpers
create function app.user_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select m.org_id
  from public.organization_members m
  join public.organizations o on o.id = m.org_id and o.deleted_at is null
  where m.user_id = (select auth.uid())
$$;

create function app.role_in(org uuid) returns public.org_role
language sql stable security definer set search_path = ''
as $$
  select m.role
  from public.organization_members m
  join public.organizations o on o.id = m.org_id and o.deleted_at is null
  where m.org_id = org and m.user_id = (select auth.uid())
$$;

create function app.permissions_of(org uuid, member uuid) returns text[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(p order by p), '{}')
  from (
    select rp.permission as p
    from public.organization_members m
    join public.organizations o on o.id = m.org_id and o.deleted_at is null
    join public.role_permissions rp on rp.role = m.role
    where m.org_id = org and m.user_id = member
      and not exists (select 1 from public.member_permissions mp
                      where mp.org_id = org and mp.user_id = member and mp.permission = rp.permission and not mp.granted)
    union
    select mp.permission
    from public.member_permissions mp
    join public.organizations o on o.id = mp.org_id and o.deleted_at is null
    where mp.org_id = org and mp.user_id = member and mp.granted
  ) perms
$$;

create function app.has_permission(org uuid, permission text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select permission = any (app.permissions_of(org, (select auth.uid())))
$$;

revoke all on function app.user_org_ids(), app.role_in(uuid), app.permissions_of(uuid, uuid), app.has_permission(uuid, text) from public;
grant execute on function app.user_org_ids(), app.role_in(uuid), app.has_permission(uuid, text) to authenticated, service_role;
grant execute on function app.permissions_of(uuid, uuid) to service_role, supabase_auth_admin;

-- ---------------------------------------------------------------------------------------------
-- Triggers: who and when are set by the database, never by clients.
create function app.stamp_row() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := now();
    new.created_by := (select auth.uid());
  else
    new.created_at := old.created_at;
    new.created_by := old.created_by;
  end if;
  new.updated_at := now();
  new.updated_by := (select auth.uid());
  return new;
end
$$;

create trigger stamp_row before insert or update on public.organizations
  for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.organization_members
  for each row execute function app.stamp_row();

-- An organization always keeps an owner, and only owners make or unmake owners.
create function app.guard_owners() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  acting uuid := (select auth.uid());
begin
  if acting is not null
     and ((tg_op <> 'DELETE' and new.role = 'owner') or (tg_op <> 'INSERT' and old.role = 'owner'))
     and (tg_op <> 'DELETE' or old.user_id <> acting)
     -- the founding owner, inserted by create_organization, is the organization's first member
     and not (tg_op = 'INSERT' and not exists (select 1 from public.organization_members where org_id = new.org_id))
     and app.role_in(coalesce(new.org_id, old.org_id)) is distinct from 'owner' then
    raise exception 'only an owner can make or unmake owners' using errcode = 'TN002';
  end if;
  if tg_op <> 'INSERT' and old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner')
     and exists (select 1 from public.organizations where id = old.org_id) -- not a cascade from deleting the org
     and not exists (select 1 from public.organization_members
                     where org_id = old.org_id and role = 'owner' and user_id <> old.user_id) then
    raise exception 'an organization must keep at least one owner' using errcode = 'TN001';
  end if;
  return coalesce(new, old);
end
$$;
create trigger guard_owners before insert or update of role or delete on public.organization_members
  for each row execute function app.guard_owners();

-- ---------------------------------------------------------------------------------------------
-- Row-level security
alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
alter table public.permissions enable row level security;
alter table public.role_permissions enable row level security;
alter table public.member_permissions enable row level security;
alter table public.user_active_org enable row level security;

-- Writes that must go through RPCs are not granted at all; the rest is column-limited.
revoke insert, update, delete, truncate on public.organizations from anon, authenticated;
grant update (name, settings, coppa, ferpa, data_region) on public.organizations to authenticated;
revoke insert, truncate on public.organization_members from anon, authenticated;
revoke update on public.organization_members from anon, authenticated;
grant update (role) on public.organization_members to authenticated;
revoke insert, update, delete, truncate on public.permissions, public.role_permissions, public.subscription_tiers from anon, authenticated;
revoke insert, update, delete, truncate on public.user_active_org from anon, authenticated;
revoke all on public.organizations, public.organization_members, public.permissions, public.role_permissions,
              public.member_permissions, public.user_active_org, public.subscription_tiers from anon;

create policy "members see their organizations" on public.organizations
  for select to authenticated using (id in (select app.user_org_ids()));
create policy "settings managers change their organization" on public.organizations
  for update to authenticated
  using ((select app.has_permission(id, 'settings.manage')))
  with check ((select app.has_permission(id, 'settings.manage')));

create policy "members see who else is in their organizations" on public.organization_members
  for select to authenticated using (org_id in (select app.user_org_ids()));
create policy "member managers change roles" on public.organization_members
  for update to authenticated
  using ((select app.has_permission(org_id, 'members.manage')))
  with check ((select app.has_permission(org_id, 'members.manage')));
create policy "member managers remove members, and members may leave" on public.organization_members
  for delete to authenticated
  using (user_id = (select auth.uid()) or (select app.has_permission(org_id, 'members.manage')));

create policy "signed-in users read the permission catalog" on public.permissions
  for select to authenticated using (true);
create policy "signed-in users read role defaults" on public.role_permissions
  for select to authenticated using (true);

create policy "members see their own overrides, managers see all of their organization's" on public.member_permissions
  for select to authenticated
  using (user_id = (select auth.uid()) or (select app.has_permission(org_id, 'members.manage')));
create policy "member managers grant permissions" on public.member_permissions
  for insert to authenticated with check ((select app.has_permission(org_id, 'members.manage')));
create policy "member managers change grants" on public.member_permissions
  for update to authenticated
  using ((select app.has_permission(org_id, 'members.manage')))
  with check ((select app.has_permission(org_id, 'members.manage')));
create policy "member managers remove grants" on public.member_permissions
  for delete to authenticated using ((select app.has_permission(org_id, 'members.manage')));

create policy "users see their own active organization" on public.user_active_org
  for select to authenticated using (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- RPCs
create function public.create_organization(name text, slug text, tier public.subscription_tier default 'free')
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
  insert into public.organizations (name, slug, tier) values (name, slug, tier) returning * into org;
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

revoke all on function public.create_organization(text, text, public.subscription_tier), public.set_active_organization(uuid) from public, anon;
grant execute on function public.create_organization(text, text, public.subscription_tier), public.set_active_organization(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Custom access token hook (hosted contract: event jsonb -> jsonb), run by GoTrue as
-- supabase_auth_admin. Adds org_id, org_role and permissions for the active organization;
-- null when the user has none or is no longer a member of it.
create function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable set search_path = ''
as $$
declare
  uid uuid := (event ->> 'user_id')::uuid;
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  active uuid;
  member_role public.org_role;
begin
  select a.org_id, m.role into active, member_role
  from public.user_active_org a
  join public.organization_members m on m.org_id = a.org_id and m.user_id = a.user_id
  join public.organizations o on o.id = a.org_id and o.deleted_at is null
  where a.user_id = uid;

  if active is null then
    -- No chosen organization: fall back to the oldest membership, so a new member's first token works.
    select m.org_id, m.role into active, member_role
    from public.organization_members m
    join public.organizations o on o.id = m.org_id and o.deleted_at is null
    where m.user_id = uid
    order by m.created_at, m.org_id
    limit 1;
  end if;

  claims := claims || jsonb_build_object(
    'org_id', active,
    'org_role', member_role,
    'permissions', case when active is null then null else to_jsonb(app.permissions_of(active, uid)) end);
  return jsonb_build_object('claims', claims);
end
$$;

grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook(jsonb) from authenticated, anon, public;
grant select on public.user_active_org, public.organization_members, public.organizations to supabase_auth_admin;
create policy "the auth server reads active organizations" on public.user_active_org
  for select to supabase_auth_admin using (true);
create policy "the auth server reads memberships" on public.organization_members
  for select to supabase_auth_admin using (true);
create policy "the auth server reads organizations" on public.organizations
  for select to supabase_auth_admin using (true);
