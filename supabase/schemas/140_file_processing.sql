-- File processing: a new object in the `files` bucket calls the file-processing function (the
-- payload of a database webhook, through app.call_function after commit), and a sweep every minute
-- retries what is due, puts back what hangs in `scanning`, and fails uploads that never arrived,
-- so no file stays unsettled and no reservation leaks. Thumbnails and extracted text are written
-- by the worker's jobs.

-- Sends one object to the file-processing function; false (and a warning) when Vault lacks the
-- address or key, in which case the sweep sends it once they exist.
create function app.request_file_processing(object_record jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  -- the organization is the object's first folder (app.call_function passes it to the net worker)
  return app.call_function('file-processing',
    jsonb_build_object('type', 'INSERT', 'table', 'objects', 'schema', 'storage', 'record', object_record, 'old_record', null,
                       'org_id', substring(object_record ->> 'name' from '^([0-9a-f-]{36})/')));
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
-- The sweep (pg_cron, every minute: the schedule is below; also callable by the service).
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

-- ---------------------------------------------------------------------------------------------
-- Thumbnails (the worker makes them, into the `thumbnails` bucket): readable by whoever may read
-- the file.

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

-- The thumbnail job records what it stored, at the one path a file's thumbnail may have
-- ({org}/{file}.webp), in its request context: for a clean image of the job's own organization
-- only (null otherwise). A function, not a column grant: members hold the same role as jobs, and a
-- thumbnail_path they could write would name another organization's object to files.place.
create function app.record_file_thumbnail(file_id uuid) returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  path text;
begin
  update public.files f set thumbnail_path = format('%s/%s.webp', f.org_id, f.id)
  where f.id = record_file_thumbnail.file_id and f.org_id = (app.job_principal()).org_id
    and f.status = 'clean' and f.declared_mime like 'image/%' and app.has_permission(f.org_id, 'files.read')
  returning f.thumbnail_path into path;
  return path;
end
$$;
revoke all on function app.record_file_thumbnail(uuid) from public;
grant execute on function app.record_file_thumbnail(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Text extracted from files (PDF and text files, by the worker's files.extract-text job), for
-- search: readable by whoever may read the file, written by the service only. The content is kept
-- out of the audit log (it may hold personal data; contains_pii on the file says so).
create table public.file_texts (
  file_id uuid primary key,
  org_id uuid not null,
  content text not null check (length(content) <= 1000000),
  truncated boolean not null default false,
  search tsvector generated always as (to_tsvector('simple', content)) stored,
  extracted_at timestamptz not null default now(),
  foreign key (org_id, file_id) references public.files (org_id, id) on delete cascade
);
create index file_texts_org_idx on public.file_texts (org_id);
create index file_texts_search_idx on public.file_texts using gin (search);
create trigger audit_changes after insert or update or delete on public.file_texts
  for each row execute function app.audit_record_change('org_id', 'file_id', 'content,search', '');

alter table public.file_texts enable row level security;
revoke all on public.file_texts from anon, authenticated;
grant select on public.file_texts to authenticated;
create policy "readers see the text of files they may read" on public.file_texts
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids()))
         and exists (select 1 from public.files f where f.id = file_id and f.deleted_at is null and f.status = 'clean'
                     and app.file_access(f, 'read')));

-- The text-extraction job stores a file's text, and flags the file when the text holds personal
-- data, in its request context: for a clean file of the job's own organization only (false
-- otherwise). A function for the reason thumbnails have one: members hold the same role as jobs,
-- and neither the text nor contains_pii is theirs to write.
create function app.record_file_text(file_id uuid, content text, truncated boolean, contains_pii boolean) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  f public.files;
begin
  select * into f from public.files
  where id = record_file_text.file_id and org_id = (app.job_principal()).org_id and status = 'clean' and deleted_at is null;
  if f.id is null or not app.has_permission(f.org_id, 'files.read') then
    return false;
  end if;
  insert into public.file_texts (file_id, org_id, content, truncated)
  values (f.id, f.org_id, record_file_text.content, record_file_text.truncated)
  on conflict on constraint file_texts_pkey
  do update set content = excluded.content, truncated = excluded.truncated, extracted_at = now();
  if record_file_text.contains_pii and not f.contains_pii then
    update public.files set contains_pii = true where id = f.id;
  end if;
  return true;
end
$$;
revoke all on function app.record_file_text(uuid, text, boolean, boolean) from public;
grant execute on function app.record_file_text(uuid, text, boolean, boolean) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Catalog rows and schedules
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('thumbnails', 'thumbnails', false, 1048576, array['image/webp'])
on conflict (id) do nothing;

select cron.schedule('files-sweep', '* * * * *', 'select app.sweep_files()');
