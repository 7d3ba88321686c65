-- A new organization starts on the free tier: the tier decides limits and price, so only the
-- service (billing) changes it, never the creating user. Replaces the signature that took a tier.

drop function public.create_organization(text, text, public.subscription_tier);

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

revoke all on function public.create_organization(text, text) from public, anon;
grant execute on function public.create_organization(text, text) to authenticated;
