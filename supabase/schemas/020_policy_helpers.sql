-- Who is calling, and what may they do: the helpers every policy and RPC asks. The caller is a
-- signed-in user (auth.uid()), a job (claims job_id, job_org_id, job_scopes and no `sub`) or a live
-- API key (claim api_key_id and no `sub`); each answers from live data, so removing a member, a
-- permission or a key cuts access at the next request, not at token expiry. The helpers are
-- STABLE SECURITY DEFINER with an empty search_path (every name is qualified), so policies can
-- call them without recursing into the policies they serve.
--
-- Policies ask "is this row's organization one where the caller holds <permission>?" in the form
-- `org_id = any (array(select app.org_ids_with_permission('<permission>')))` (`npm run bench:rls`
-- measures it):
-- * the array is an InitPlan computed once per statement and becomes an index condition, so even
--   a query with no filter of its own (RLS alone) reads only the caller's organizations through
--   the org_id index. The `org_id in (select ...)` form is a hashed-subplan filter: a sequential
--   scan of the table.
-- * The two helpers policies call (app.user_org_ids, app.org_ids_with_permission) are PL/pgSQL,
--   whose plans are prepared once per session; a SECURITY DEFINER SQL function cannot be inlined
--   and is planned again at every call.

-- A job's database work runs as `authenticated` with claims naming the job, its organization and
-- the scopes its registry entry declares ({ job_id, job_org_id, job_scopes }) and no `sub`, so RLS
-- confines it to that organization as it confines an API key. Only a server holding the database
-- connection can set these claims; they never come from a user's token.
-- Plain PL/pgSQL expressions, not `(select ...)`: the SQL functions auth.uid() and auth.jwt() are
-- then inlined and evaluated directly instead of running a query through SPI.
create function app.job_principal(out org_id uuid, out scopes text[])
language plpgsql stable set search_path = ''
as $$
declare
  claims jsonb := auth.jwt();
begin
  if auth.uid() is null and claims ? 'job_id' and claims ? 'job_org_id' then
    org_id := nullif(claims ->> 'job_org_id', '')::uuid;
    scopes := array(select jsonb_array_elements_text(coalesce(claims -> 'job_scopes', '[]')));
  end if;
end
$$;

-- A live API key named in the claims, when no user is signed in.
create function app.current_api_key_id() returns uuid
language sql stable security definer set search_path = ''
as $$
  select k.id
  from public.api_keys k
  join public.organizations o on o.id = k.org_id and o.deleted_at is null
  where (select auth.uid()) is null
    and k.id = nullif((select auth.jwt()) ->> 'api_key_id', '')::uuid
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
$$;

-- The caller's role in an organization (users only).
create function app.role_in(org uuid) returns public.org_role
language sql stable security definer set search_path = ''
as $$
  select m.role
  from public.organization_members m
  join public.organizations o on o.id = m.org_id and o.deleted_at is null
  where m.org_id = org and m.user_id = (select auth.uid())
$$;

-- A member's effective permissions: the role's defaults less the member's revokes, plus grants.
-- PL/pgSQL, not SQL, for the plan: a SQL function that cannot be inlined (security definer, fixed
-- search_path) is planned again in every statement that calls it, which cost more than running it
-- on every request that checks a permission; PL/pgSQL keeps its plan for the connection.
create function app.permissions_of(org uuid, member uuid) returns text[]
language plpgsql stable security definer set search_path = ''
as $$
begin
  return (
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
    ) perms);
end
$$;

-- The scopes a key acts with: those of its scopes its creator still holds in its organization,
-- so demoting the creator or revoking their permission cuts the key at its next request.
-- (PL/pgSQL for its plan, as permissions_of. The creator's permissions are read into a variable
-- first: a subquery of the form `lateral (select f() as held)` is flattened by the planner, and
-- f() then ran once per scope the key has.) NULL for a key that does not exist.
create function app.api_key_scopes(key_id uuid) returns text[]
language plpgsql stable security definer set search_path = ''
as $$
declare
  k record;
  held text[];
begin
  select ak.org_id, ak.created_by, ak.scopes into k from public.api_keys ak where ak.id = key_id;
  if not found then
    return null;
  end if;
  held := app.permissions_of(k.org_id, k.created_by);
  return coalesce(array(select s from unnest(k.scopes) s where s = any (held) order by s), '{}');
end
$$;

-- The caller's permissions in an organization: a member's, a job's scopes in its own
-- organization, or an API key's effective scopes in its organization.
create function app.caller_permissions(org uuid) returns text[]
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  job record;
begin
  if uid is not null then
    return app.permissions_of(org, uid);
  end if;
  select * into job from app.job_principal();
  if job.org_id is not null then
    return case when job.org_id = org and exists (select 1 from public.organizations o where o.id = org and o.deleted_at is null)
                then job.scopes else '{}' end;
  end if;
  return coalesce((select app.api_key_scopes(k.id) from public.api_keys k where k.id = app.current_api_key_id() and k.org_id = org), '{}');
end
$$;

create function app.has_permission(org uuid, permission text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select has_permission.permission = any (app.caller_permissions(org))
$$;

-- The organizations the caller belongs to (a job: its own; a key: its own). A job's organization
-- is read from the claims here rather than through app.job_principal(): this helper is on the
-- path of every SELECT policy, and it never needs the job's scopes.
create function app.user_org_ids() returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := auth.uid();
  claims jsonb;
  job_org uuid;
begin
  if uid is not null then
    return query
      select m.org_id from public.organization_members m
      join public.organizations o on o.id = m.org_id and o.deleted_at is null
      where m.user_id = uid;
    return;
  end if;
  claims := auth.jwt();
  if claims ? 'job_id' and claims ? 'job_org_id' then
    job_org := nullif(claims ->> 'job_org_id', '')::uuid;
  end if;
  if job_org is not null then
    return query select o.id from public.organizations o where o.id = job_org and o.deleted_at is null;
    return;
  end if;
  return query select k.org_id from public.api_keys k where k.id = app.current_api_key_id();
end
$$;

-- Organizations where the caller holds the permission: by role default unless revoked for the
-- member, or granted to the member; for a job or an API key, its organization if it has the scope.
create function app.org_ids_with_permission(permission text) returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  job record;
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
    return;
  end if;
  select * into job from app.job_principal();
  if job.org_id is not null then
    return query select o.id from public.organizations o
                 where o.id = job.org_id and o.deleted_at is null and org_ids_with_permission.permission = any (job.scopes);
    return;
  end if;
  return query
    select k.org_id from public.api_keys k
    where k.id = app.current_api_key_id() and org_ids_with_permission.permission = any (app.api_key_scopes(k.id));
end
$$;

revoke all on function app.job_principal(), app.current_api_key_id(), app.role_in(uuid), app.permissions_of(uuid, uuid),
                       app.api_key_scopes(uuid), app.caller_permissions(uuid), app.has_permission(uuid, text),
                       app.user_org_ids(), app.org_ids_with_permission(text) from public;
grant execute on function app.job_principal(), app.current_api_key_id(), app.role_in(uuid), app.api_key_scopes(uuid),
                          app.caller_permissions(uuid), app.has_permission(uuid, text), app.user_org_ids(),
                          app.org_ids_with_permission(text)
  to authenticated, service_role;
grant execute on function app.permissions_of(uuid, uuid) to service_role, supabase_auth_admin;
