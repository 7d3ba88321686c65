-- Deleting an organization is soft: it disappears for everyone at once (every helper ignores
-- organizations with deleted_at set) and an owner can restore it within the tier's retention
-- period. The worker purges it for good after that period.

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
