-- Who may write whose permission overrides, and owners guarded from jobs too (issue 16, items 2
-- and 17). Before, an admin holding members.manage could revoke every permission of every owner
-- (who then could not undo it, demote the admin, or read the audit entry), grant themselves
-- anything, and name any user, even of another organization, as an override's created_by; and a
-- job holding members.manage could make an owner, which only owners may do.
-- - An override is written (inserted, changed, removed) only by a holder of members.manage for a
--   member of a lower rank than their own (app.role_rank: owner > admin > teacher > student); owners write
--   overrides for anyone. Nobody writes their own. API keys and jobs rank as admins: never over
--   owners or admins.
-- - created_by is the writing user, whatever the client sent.
-- - The owner guard covers job principals as it covers users and API keys.

-- May the caller write permission overrides for this member of the organization?
create function app.may_override_permissions_of(org uuid, member uuid) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  member_role public.org_role := (select m.role from public.organization_members m where m.org_id = org and m.user_id = member);
  caller_role public.org_role;
begin
  if member_role is null or member = (select auth.uid()) or not app.has_permission(org, 'members.manage') then
    return false;
  end if;
  caller_role := app.role_in(org); -- null for API keys and jobs
  return caller_role = 'owner' or app.role_rank(member_role) < app.role_rank(coalesce(caller_role, 'admin'));
end
$$;
revoke all on function app.may_override_permissions_of(uuid, uuid) from public;
grant execute on function app.may_override_permissions_of(uuid, uuid) to authenticated, service_role;

drop policy "member managers grant permissions" on public.member_permissions;
drop policy "member managers change grants" on public.member_permissions;
drop policy "member managers remove grants" on public.member_permissions;
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

create function app.stamp_override_author() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.created_by := case when tg_op = 'INSERT' then (select auth.uid()) else old.created_by end;
  return new;
end
$$;
revoke all on function app.stamp_override_author() from public;
create trigger stamp_override_author before insert or update on public.member_permissions
  for each row execute function app.stamp_override_author();

create or replace function app.guard_owners() returns trigger
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
