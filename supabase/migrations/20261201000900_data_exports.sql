-- Data exports: an organization's data as a JSON archive in the private `exports` bucket, made by
-- the tenant.export job. Members holding data.export request one (RPC), follow its progress, and
-- download it through a signed URL; only the export job itself updates an export's progress.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('exports', 'exports', false, 524288000, array['application/json'])
on conflict (id) do nothing;

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
  updated_by uuid references auth.users (id) on delete set null
);
create index data_exports_org_idx on public.data_exports (org_id, created_at desc);
create trigger stamp_row before insert or update on public.data_exports
  for each row execute function app.stamp_row();
select app.enable_audit('public.data_exports', 'org_id', '{id}', '{}', '{progress}');

alter table public.data_exports enable row level security;
revoke all on public.data_exports from anon, authenticated;
grant select on public.data_exports to authenticated;
grant update (status, progress, object_path, error, completed_at) on public.data_exports to authenticated;

create policy "exporters see their organization's exports" on public.data_exports
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('data.export'))));
create policy "the export job updates its organization's exports" on public.data_exports
  for update to authenticated
  using (org_id = (select (app.job_principal()).org_id) and org_id = any (array(select app.org_ids_with_permission('data.export'))))
  with check (org_id = (select (app.job_principal()).org_id));

-- Archives are read by exporters of the organization named by the first folder; written by the
-- service (the job uploads with the service key under its own organization's folder).
create policy "exporters read their organization's archives" on storage.objects
  for select to authenticated
  using (bucket_id = 'exports' and (storage.foldername(name))[1] = any (array(select app.org_ids_with_permission('data.export')::text)));

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
