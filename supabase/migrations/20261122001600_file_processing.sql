-- File processing: a new object in the `files` bucket calls the file-processing function (the
-- payload of a database webhook, sent with pg_net after commit), and a sweep every minute retries
-- what is due, puts back what hangs in `scanning`, and fails uploads that never arrived, so no file
-- stays unsettled and no reservation leaks.
--
-- The function's address and the key to call it with come from Vault, as Supabase recommends for
-- pg_net calls: secrets `project_url` (https://<ref>.supabase.co) and `service_role_key`. The local
-- stack sets both at start; on a hosted project, create them once (docs/files.md).

create function app.vault_secret(secret_name text) returns text
language sql stable security definer set search_path = ''
as $$ select decrypted_secret from vault.decrypted_secrets where name = secret_name order by created_at desc limit 1 $$;
revoke all on function app.vault_secret(text) from public;

-- Sends one object to the file-processing function; false (and a warning) when Vault lacks the
-- address or key, in which case the sweep sends it once they exist.
create function app.request_file_processing(object_record jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  base text := app.vault_secret('project_url');
  key text := app.vault_secret('service_role_key');
begin
  if base is null or key is null then
    raise warning 'vault secrets project_url and service_role_key are needed to process files';
    return false;
  end if;
  perform net.http_post(
    url := rtrim(base, '/') || '/functions/v1/file-processing',
    body := jsonb_build_object('type', 'INSERT', 'table', 'objects', 'schema', 'storage', 'record', object_record, 'old_record', null),
    headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || key),
    timeout_milliseconds := 120000);
  return true;
end
$$;
revoke all on function app.request_file_processing(jsonb) from public;

create function app.on_file_object_created() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform app.request_file_processing(to_jsonb(new));
  return null;
end
$$;
revoke all on function app.on_file_object_created() from public;
create trigger process_new_file after insert on storage.objects
  for each row when (new.bucket_id = 'files') execute function app.on_file_object_created();

-- ---------------------------------------------------------------------------------------------
-- The sweep (pg_cron, every minute; also callable by the service).
create function app.sweep_files() returns table (resent integer, unstuck integer, abandoned integer)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  -- a scan that has not reported for 10 minutes died with its function: try again
  update public.files set status = 'pending', next_attempt_at = now()
  where status = 'scanning' and scan_started_at < now() - interval '10 minutes';
  get diagnostics unstuck = row_count;

  -- an upload whose URL has expired (2 hours) without bytes arriving will not come: release it
  update public.files f set status = 'failed', status_reason = 'upload_never_arrived'
  where f.status = 'pending' and f.created_at < now() - interval '3 hours'
    and not exists (select 1 from storage.objects o where o.bucket_id = 'files' and o.name = f.object_path);
  get diagnostics abandoned = row_count;

  -- uploaded files that are due (a retry after backoff, or a webhook that was lost): send again,
  -- and hold them for a minute so the next sweep does not send them twice meanwhile
  with due as (
    select f.id, o as object_record from public.files f
    join storage.objects o on o.bucket_id = 'files' and o.name = f.object_path
    where f.status = 'pending' and coalesce(f.next_attempt_at, f.updated_at + interval '1 minute') <= now()
    order by f.next_attempt_at nulls first
    limit 100
    for update of f skip locked
  ), sent as (
    select d.id from due d where app.request_file_processing(to_jsonb(d.object_record))
  )
  update public.files set next_attempt_at = now() + interval '1 minute' where id in (select id from sent);
  get diagnostics resent = row_count;
  return next;
end
$$;
revoke all on function app.sweep_files() from public;
grant execute on function app.sweep_files() to service_role;

select cron.schedule('files-sweep', '* * * * *', 'select app.sweep_files()');

-- ---------------------------------------------------------------------------------------------
-- The queue for thumbnails (the worker makes them), and where they go: readable by whoever may
-- read the file.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('thumbnails', 'thumbnails', false, 1048576, array['image/webp'])
on conflict (id) do nothing;

create function app.may_read_thumbnail(object_name text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.files f
                 where f.org_id::text = (storage.foldername(object_name))[1]
                   and f.id::text = split_part(storage.filename(object_name), '.', 1)
                   and f.status = 'clean' and f.deleted_at is null and app.file_access(f, 'read'))
$$;
revoke all on function app.may_read_thumbnail(text) from public;
grant execute on function app.may_read_thumbnail(text) to authenticated;

create policy "members read thumbnails of files they may read" on storage.objects
  for select to authenticated using (bucket_id = 'thumbnails' and app.may_read_thumbnail(name));

alter table public.files add column scan_started_at timestamptz;
alter table public.files add column thumbnail_path text check (thumbnail_path ~ '^[0-9a-f-]{36}/[0-9a-f-]{36}\.webp$');
