-- Data exports: an organization's data as a JSON archive in the private `exports` bucket, made by
-- the tenant.export job. Members holding data.export request one (RPC), follow its progress, and
-- download it through a signed URL; only the export job itself updates an export's progress.
-- The job reads each section in the requester's own request context (RLS as that user), only the
-- sections whose permission the requester holds, and records what the archive needed in
-- required_permissions: the archive is readable by its requester, or by a member holding
-- data.export and every one of those permissions.

create table public.data_exports (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  status text not null default 'queued' check (status in ('queued', 'running', 'completed', 'failed')),
  progress integer not null default 0 check (progress between 0 and 100),
  object_path text check (object_path is null or object_path ~ '^[0-9a-f-]{36}/[0-9a-f-]{36}\.json$'),
  error text check (length(error) <= 2000),
  job_id uuid,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  required_permissions text[] not null default '{}'
);
create index data_exports_org_idx on public.data_exports (org_id, created_at desc);
create index data_exports_created_by_idx on public.data_exports (created_by) where created_by is not null;
create index data_exports_updated_by_idx on public.data_exports (updated_by) where updated_by is not null;
create trigger stamp_row before insert or update on public.data_exports
  for each row execute function app.stamp_row();
create trigger audit_changes after insert or update or delete on public.data_exports
  for each row execute function app.audit_record_change('org_id', 'id', '', 'progress');

alter table public.data_exports enable row level security;
revoke all on public.data_exports from anon, authenticated;
grant select, update (status, progress, object_path, error, completed_at, required_permissions) on public.data_exports to authenticated;

create policy "exporters see their organization's exports" on public.data_exports
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('data.export'))));
create policy "the export job updates its organization's exports" on public.data_exports
  for update to authenticated
  using (org_id = (select (app.job_principal()).org_id) and org_id = any (array(select app.org_ids_with_permission('data.export'))))
  with check (org_id = (select (app.job_principal()).org_id));

-- Archives are written by the service (the job uploads with the service key under its own
-- organization's folder) and read by the export's requester, or by a member holding data.export
-- and every permission the archive needed.
create function app.may_read_export_object(object_name text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.data_exports e
    join public.organizations o on o.id = e.org_id and o.deleted_at is null
    where e.object_path = object_name and e.status = 'completed'
      and (e.created_by = (select auth.uid())
           or (app.has_permission(e.org_id, 'data.export')
               and e.required_permissions <@ app.caller_permissions(e.org_id))))
$$;
revoke all on function app.may_read_export_object(text) from public;
grant execute on function app.may_read_export_object(text) to authenticated;

create policy "requesters, and holders of what an archive needed, read it" on storage.objects
  for select to authenticated using (bucket_id = 'exports' and app.may_read_export_object(name));

-- ---------------------------------------------------------------------------------------------
-- An export whose job is gone (failed for good, cancelled, refused by the worker) must not block
-- the next one: before refusing with TN050, request_data_export marks failed the organization's
-- unfinished exports whose job is no longer queued, retrying or active (or never existed).
create function app.settle_orphaned_exports(org uuid) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  settled integer;
begin
  if to_regclass('pgboss.job') is null then
    return 0;
  end if;
  execute $q$
    update public.data_exports e set status = 'failed', error = 'the export job ended without finishing it (' || coalesce(j.state::text, 'gone') || ')'
    from public.data_exports d left join pgboss.job j on j.id = d.job_id
    where e.id = d.id and d.org_id = $1 and d.status in ('queued', 'running')
      and (j.id is null or j.state::text not in ('created', 'retry', 'active'))
  $q$ using org;
  get diagnostics settled = row_count;
  return settled;
end
$$;
revoke all on function app.settle_orphaned_exports(uuid) from public;

create function public.request_data_export(org_id uuid) returns public.data_exports
language plpgsql volatile security definer set search_path = ''
as $$
declare
  export public.data_exports;
  request_id text := nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-request-id';
begin
  if (select auth.uid()) is null or not app.has_permission(request_data_export.org_id, 'data.export') then
    raise exception 'data.export is required in organization %', request_data_export.org_id using errcode = '42501';
  end if;
  perform app.settle_orphaned_exports(request_data_export.org_id);
  if exists (select 1 from public.data_exports e where e.org_id = request_data_export.org_id and e.status in ('queued', 'running')) then
    raise exception 'an export of organization % is already under way', request_data_export.org_id using errcode = 'TN050';
  end if;
  insert into public.data_exports (org_id) values (request_data_export.org_id) returning * into export;
  update public.data_exports set job_id = app.enqueue_job('tenant.export', jsonb_build_object(
      'org_id', export.org_id, 'export_id', export.id, 'correlation_id', coalesce(nullif(request_id, ''), export.id::text)))
  where id = export.id returning * into export;
  return export;
end
$$;
revoke all on function public.request_data_export(uuid) from public, anon;
grant execute on function public.request_data_export(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Catalog rows
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('exports', 'exports', false, 524288000, array['application/json'])
on conflict (id) do nothing;
