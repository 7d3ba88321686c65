-- A data export reads what its requester may read, and only they (or a holder of every
-- permission it needed) read the archive (issue 16, item 5). Before, the export job read with
-- every scope it declared, so a member holding only data.export got the audit log, API keys,
-- invitation e-mails and everyone's permission overrides; and every data.export holder could read
-- every archive.
-- - The job (worker/src/jobs/tenant.ts) reads each section in the requester's own request
--   context (RLS as that user), and only the sections whose permission the requester holds; it
--   records what the archive needed in required_permissions.
-- - An archive object is readable by the export's requester, or by a member holding data.export
--   and every one of its required_permissions.

alter table public.data_exports add column required_permissions text[] not null default '{}';
grant update (required_permissions) on public.data_exports to authenticated;

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

drop policy "exporters read their organization's archives" on storage.objects;
create policy "requesters, and holders of what an archive needed, read it" on storage.objects
  for select to authenticated using (bucket_id = 'exports' and app.may_read_export_object(name));
