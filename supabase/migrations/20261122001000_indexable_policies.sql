-- Policies that an index can serve, measured by `npm run bench:rls` on 1,000,000 rows:
--
-- * `org_id = any (array(select <helper>))` instead of `org_id in (select <helper>)`: the array is
--   an InitPlan computed once per statement and becomes an index condition, so even a query with
--   no filter of its own (RLS alone) reads only the caller's organizations through the org_id
--   index. The `in (select ...)` form is a hashed-subplan filter: a sequential scan of the table
--   (115 ms instead of under 1 ms on the benchmark's data).
-- * The two helpers policies call are PL/pgSQL, whose plans are prepared once per session; a
--   SECURITY DEFINER SQL function cannot be inlined and is planned again at every call.

create or replace function app.user_org_ids() returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is not null then
    return query
      select m.org_id from public.organization_members m
      join public.organizations o on o.id = m.org_id and o.deleted_at is null
      where m.user_id = uid;
  else
    return query select k.org_id from public.api_keys k where k.id = app.current_api_key_id();
  end if;
end
$$;

-- Organizations where the caller holds the permission: by role default unless revoked for the
-- member, or granted to the member; for an API key, its organization if the key has the scope.
create or replace function app.org_ids_with_permission(permission text) returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is not null then
    return query
      select m.org_id from public.organization_members m
      join public.organizations o on o.id = m.org_id and o.deleted_at is null
      left join public.member_permissions mp
        on mp.org_id = m.org_id and mp.user_id = m.user_id and mp.permission = org_ids_with_permission.permission
      where m.user_id = uid
        and coalesce(mp.granted, exists (select 1 from public.role_permissions rp
                                         where rp.role = m.role and rp.permission = org_ids_with_permission.permission));
  else
    return query
      select k.org_id from public.api_keys k
      where k.id = app.current_api_key_id() and org_ids_with_permission.permission = any (k.scopes);
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
drop policy "members see their organizations" on public.organizations;
create policy "members see their organizations" on public.organizations
  for select to authenticated using (id = any (array(select app.user_org_ids())));

drop policy "settings managers change their organization" on public.organizations;
create policy "settings managers change their organization" on public.organizations
  for update to authenticated
  using (id = any (array(select app.org_ids_with_permission('settings.manage'))))
  with check (id = any (array(select app.org_ids_with_permission('settings.manage'))));

drop policy "members see who else is in their organizations" on public.organization_members;
create policy "members see who else is in their organizations" on public.organization_members
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));

drop policy "member managers change roles" on public.organization_members;
create policy "member managers change roles" on public.organization_members
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('members.manage'))))
  with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "member managers remove members, and members may leave" on public.organization_members;
create policy "member managers remove members, and members may leave" on public.organization_members
  for delete to authenticated
  using (user_id = (select auth.uid()) or org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "members see their own overrides, managers see all of their organization's" on public.member_permissions;
create policy "members see their own overrides, managers see all of their organization's" on public.member_permissions
  for select to authenticated
  using (user_id = (select auth.uid()) or org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "member managers grant permissions" on public.member_permissions;
create policy "member managers grant permissions" on public.member_permissions
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "member managers change grants" on public.member_permissions;
create policy "member managers change grants" on public.member_permissions
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('members.manage'))))
  with check (org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "member managers remove grants" on public.member_permissions;
create policy "member managers remove grants" on public.member_permissions
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('members.manage'))));

drop policy "key managers see their organization's keys" on public.api_keys;
create policy "key managers see their organization's keys" on public.api_keys
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('api_keys.manage'))));

drop policy "inviters see their organization's invitations" on public.invitations;
create policy "inviters see their organization's invitations" on public.invitations
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('members.invite'))));

drop policy "audit readers see their organization's entries" on audit.log;
create policy "audit readers see their organization's entries" on audit.log
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('audit.read'))));
