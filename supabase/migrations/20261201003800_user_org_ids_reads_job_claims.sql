-- app.user_org_ids(), the helper every SELECT policy asks, reads a job's organization from the
-- claims itself instead of calling app.job_principal() (issue 19, item 3). Same answers: the job
-- path applies only without a user (`sub`), with both job_id and job_org_id in the claims, and
-- only for a live organization. The nested call was a second PL/pgSQL function with its own
-- search_path and a query for the scopes, which this helper never used. pgbench, 4 clients, a
-- job's claims set and `count(*)` of an organization's exercises under the policy's condition in
-- one pipeline: 17,600-20,300 -> 20,300-23,100 statements/s (three alternating runs of each).
create or replace function app.user_org_ids() returns setof uuid
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
