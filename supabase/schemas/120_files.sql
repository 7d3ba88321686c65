-- Files: tenant files in the private `files` bucket, with their status through scanning, versions,
-- shares, and storage quotas kept exact by triggers. An upload starts with request_file_upload
-- (called by the file-upload function as the user), which checks permission, type, size, name and
-- quota, reserves the bytes and creates the file row; the object may then be uploaded to exactly
-- that path, no larger than the reservation; the file-processing function settles it (clean,
-- infected, rejected or failed) and removes a rejected file's object. A processed file's object
-- is never overwritten: its bytes stay the ones its verdict is about. Deleting a file moves its
-- object (and thumbnail) into the private `trash` bucket, so signed URLs issued for it stop
-- working at once; restoring moves them back; the daily files sweep removes them for good once
-- the tier's retention has passed. Bytes in the trash count against the quota until then.
-- Errors: FL001 over the storage quota, FL002 type not allowed, FL003 too large for the tier,
-- FL004 bad file name, FL005 file not found (or not one the caller may change), FL006 the file
-- was already processed, FL007 an upload larger than its reservation.

create type public.file_status as enum ('pending', 'scanning', 'clean', 'infected', 'rejected', 'failed');

-- ---------------------------------------------------------------------------------------------
-- Quotas: the limit is the tier's storage_bytes; used counts clean files, deleted ones too until
-- they are purged (their bytes are still stored, in the trash: freeing them at the delete would
-- let a tenant keep unbounded bytes by uploading and deleting), reserved the uploads under way.
-- Only triggers change them.
create table public.storage_quotas (
  org_id uuid primary key references public.organizations (id) on delete cascade,
  used_bytes bigint not null default 0 check (used_bytes >= 0),
  reserved_bytes bigint not null default 0 check (reserved_bytes >= 0),
  updated_at timestamptz not null default now()
);

create function app.create_storage_quota() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.storage_quotas (org_id) values (new.id) on conflict do nothing;
  return null;
end
$$;
revoke all on function app.create_storage_quota() from public;
create trigger create_storage_quota after insert on public.organizations
  for each row execute function app.create_storage_quota();

-- ---------------------------------------------------------------------------------------------
create table public.files (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  object_path text not null unique
    check (object_path ~ '^[0-9a-f-]{36}/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9a-f-]{36}-[A-Za-z0-9._-]{1,100}$'),
  name text not null check (length(name) between 1 and 255 and name !~ '[/\\[:cntrl:]]' and name not in ('.', '..')),
  size_bytes bigint not null check (size_bytes > 0),
  declared_mime text not null check (declared_mime ~ '^[a-z]+/[a-z0-9.+-]+$'),
  detected_mime text check (detected_mime ~ '^[a-z]+/[a-z0-9.+-]+$'),
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  status public.file_status not null default 'pending',
  status_reason text check (length(status_reason) <= 500),
  category text not null default 'document' check (category in ('document', 'image', 'audio', 'video', 'archive', 'other')),
  contains_pii boolean not null default false,
  scan_attempts integer not null default 0 check (scan_attempts >= 0),
  next_attempt_at timestamptz,
  processed_at timestamptz,
  uploaded_by uuid references auth.users (id) on delete set null,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  -- written by file processing: when the current scan started (the sweep retries one that hangs)
  -- and the thumbnail the worker made
  scan_started_at timestamptz,
  thumbnail_path text check (thumbnail_path ~ '^[0-9a-f-]{36}/[0-9a-f-]{36}\.webp$'),
  unique (org_id, id)
);
create index files_created_by_idx on public.files (created_by) where created_by is not null;
create index files_updated_by_idx on public.files (updated_by) where updated_by is not null;
create index files_uploaded_by_idx on public.files (uploaded_by) where uploaded_by is not null;
-- a list's order: newest first, and by id among files stamped in the same transaction (created_at
-- is the transaction's time), so that pages neither repeat nor skip a file
create index files_org_idx on public.files (org_id, created_at desc, id desc);
create index files_unsettled_idx on public.files (next_attempt_at) where status in ('pending', 'scanning');

create table public.file_versions (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null,
  file_id uuid not null,
  version integer not null check (version > 0),
  object_path text not null,
  size_bytes bigint not null check (size_bytes > 0),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  unique (file_id, version),
  foreign key (org_id, file_id) references public.files (org_id, id) on delete cascade
);
create index file_versions_org_idx on public.file_versions (org_id);
create index file_versions_created_by_idx on public.file_versions (created_by) where created_by is not null;

create table public.file_shares (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null,
  file_id uuid not null,
  grantee_user_id uuid references auth.users (id) on delete cascade,
  grantee_role public.org_role,
  access text not null check (access in ('read', 'write')),
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  check ((grantee_user_id is null) <> (grantee_role is null)),
  foreign key (org_id, file_id) references public.files (org_id, id) on delete cascade
);
create index file_shares_org_idx on public.file_shares (org_id);
create index file_shares_file_idx on public.file_shares (file_id);
create index file_shares_created_by_idx on public.file_shares (created_by) where created_by is not null;
create index file_shares_grantee_user_id_idx on public.file_shares (grantee_user_id) where grantee_user_id is not null;
create index file_shares_updated_by_idx on public.file_shares (updated_by) where updated_by is not null;

-- byte counts change with every upload: the audit log records the quota's creation, not each count
create trigger audit_changes after insert or update or delete on public.storage_quotas
  for each row execute function app.audit_record_change('org_id', 'org_id', '', 'used_bytes,reserved_bytes,updated_at');
create trigger stamp_row before insert or update on public.files for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.file_shares for each row execute function app.stamp_row();
create trigger audit_changes after insert or update or delete on public.files
  for each row execute function app.audit_record_change('org_id', 'id', '', 'scan_attempts,next_attempt_at');
create trigger audit_changes after insert or update or delete on public.file_versions
  for each row execute function app.audit_record_change('org_id', 'id', '', '');
create trigger audit_changes after insert or update or delete on public.file_shares
  for each row execute function app.audit_record_change('org_id', 'id', '', '');

-- ---------------------------------------------------------------------------------------------
-- Quota accounting. A new file reserves its bytes under a lock on the organization's quota row;
-- settling moves them to used (clean) or releases them (infected, rejected, failed); a clean
-- file's bytes stay used through a delete and a restore, until its row goes (the files sweep
-- purging it, or the organization's purge).
create function app.storage_quota_change(org uuid, used_delta bigint, reserved_delta bigint) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  q public.storage_quotas;
  limit_bytes bigint;
begin
  select * into q from public.storage_quotas where org_id = org for update;
  if q.org_id is null then
    return;                               -- the organization is going away with its quota
  end if;
  -- Only growth is checked: settling a reservation or freeing bytes never fails, even after a downgrade.
  if used_delta + reserved_delta > 0 then
    select t.storage_bytes into limit_bytes
    from public.organizations o join public.subscription_tiers t on t.tier = o.tier where o.id = org;
    if q.used_bytes + q.reserved_bytes + used_delta + reserved_delta > limit_bytes then
      raise exception 'storage quota exceeded: % of % bytes in use or reserved', q.used_bytes + q.reserved_bytes, limit_bytes
        using errcode = 'FL001';
    end if;
  end if;
  update public.storage_quotas
  set used_bytes = used_bytes + used_delta, reserved_bytes = reserved_bytes + reserved_delta, updated_at = now()
  where org_id = org;
end
$$;
revoke all on function app.storage_quota_change(uuid, bigint, bigint) from public;

create function app.account_file_bytes() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  was_reserved boolean := tg_op <> 'INSERT' and old.status in ('pending', 'scanning');
  was_used boolean := tg_op <> 'INSERT' and old.status = 'clean';
  is_reserved boolean := tg_op <> 'DELETE' and new.status in ('pending', 'scanning');
  is_used boolean := tg_op <> 'DELETE' and new.status = 'clean';
  org uuid := coalesce(new.org_id, old.org_id);
  used_delta bigint := (case when is_used then new.size_bytes else 0 end) - (case when was_used then old.size_bytes else 0 end);
  reserved_delta bigint := (case when is_reserved then new.size_bytes else 0 end) - (case when was_reserved then old.size_bytes else 0 end);
begin
  if used_delta <> 0 or reserved_delta <> 0 then
    perform app.storage_quota_change(org, used_delta, reserved_delta);
  end if;
  return null;
end
$$;
revoke all on function app.account_file_bytes() from public;
create trigger account_file_bytes after insert or update of status, size_bytes or delete on public.files
  for each row execute function app.account_file_bytes();

-- ---------------------------------------------------------------------------------------------
-- Who may read or write a file: holders of files.read / files.write in its organization, and the
-- members a live share names (by user or by role). Deleted files are left out by the callers.
create function app.file_access(file public.files, wanted text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select (
    file.org_id = any (array(select app.org_ids_with_permission(case wanted when 'write' then 'files.write' else 'files.read' end)))
    or exists (
      select 1 from public.file_shares s
      join public.organization_members m on m.org_id = s.org_id and m.user_id = (select auth.uid())
      join public.organizations o on o.id = s.org_id and o.deleted_at is null
      where s.file_id = file.id and (s.expires_at is null or s.expires_at > now())
        and (s.access = 'write' or wanted = 'read')
        and (s.grantee_user_id = m.user_id or s.grantee_role = m.role)))
$$;

-- The storage side: an object in `files` is readable when its file is clean and the caller may
-- read it; it may be written only at the path of a pending upload the caller requested.
create function app.may_read_file_object(object_name text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.files f
                 where f.object_path = object_name and f.status = 'clean' and f.deleted_at is null and app.file_access(f, 'read'))
$$;

create function app.may_upload_file_object(object_name text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.files f
                 where f.object_path = object_name and f.status = 'pending' and f.uploaded_by = (select auth.uid())
                   and f.org_id = any (array(select app.org_ids_with_permission('files.write'))))
$$;
revoke all on function app.file_access(public.files, text), app.may_read_file_object(text), app.may_upload_file_object(text) from public;
grant execute on function app.file_access(public.files, text), app.may_read_file_object(text), app.may_upload_file_object(text)
  to authenticated, service_role;

create policy "members read clean files they may read" on storage.objects
  for select to authenticated using (bucket_id = 'files' and app.may_read_file_object(name));
create policy "uploaders write the path of their pending upload" on storage.objects
  for insert to authenticated with check (bucket_id = 'files' and app.may_upload_file_object(name));

-- ---------------------------------------------------------------------------------------------
alter table public.storage_quotas enable row level security;
alter table public.files enable row level security;
alter table public.file_versions enable row level security;
alter table public.file_shares enable row level security;
revoke all on public.storage_quotas, public.files, public.file_versions, public.file_shares from anon, authenticated;
grant select on public.storage_quotas, public.files, public.file_versions, public.file_shares to authenticated;
grant update (name, category) on public.files to authenticated;
grant insert (org_id, file_id, grantee_user_id, grantee_role, access, expires_at), delete on public.file_shares to authenticated;

create policy "members see their organization's storage use" on public.storage_quotas
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));

-- A file that is not clean (being checked, infected, rejected, failed) is listed only to those who
-- may write the organization's files (uploaders and staff follow its verdict), never to readers by
-- role or by a share: a student never sees an infected file's row, as no reader gets its bytes.
create policy "readers see the clean files they may read, writers every file" on public.files
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids())) and deleted_at is null and app.file_access(files, 'read')
         and (status = 'clean' or org_id = any (array(select app.org_ids_with_permission('files.write')))));
create policy "writers rename and file files" on public.files
  for update to authenticated
  using (org_id = any (array(select app.user_org_ids())) and deleted_at is null and app.file_access(files, 'write'))
  with check (app.file_access(files, 'write'));

create policy "readers see versions of clean files, writers of every file" on public.file_versions
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids()))
         and exists (select 1 from public.files f where f.id = file_id and f.deleted_at is null and app.file_access(f, 'read')
                     and (f.status = 'clean' or f.org_id = any (array(select app.org_ids_with_permission('files.write'))))));

create policy "writers see their organization's shares" on public.file_shares
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('files.write'))));
create policy "writers share their organization's files" on public.file_shares
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('files.write'))));
create policy "writers withdraw shares" on public.file_shares
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('files.write'))));

-- ---------------------------------------------------------------------------------------------
-- Starting an upload. The object path is made here: {org}/{yyyy}/{mm}/{dd}/{file id}-{safe name}.
create function app.safe_file_name(name text) returns text
language sql immutable set search_path = ''
as $$
  select left(coalesce(nullif(trim(both '.-' from regexp_replace(name, '[^A-Za-z0-9._-]+', '-', 'g')), ''), 'file'), 100)
$$;

create function app.file_category(mime text) returns text
language sql immutable set search_path = ''
as $$
  select case
    when mime like 'image/%' then 'image' when mime like 'audio/%' then 'audio' when mime like 'video/%' then 'video'
    when mime in ('application/zip') then 'archive'
    when mime like 'text/%' or mime in ('application/pdf', 'application/json') or mime like 'application/vnd.openxmlformats-%' then 'document'
    else 'other' end
$$;
revoke all on function app.safe_file_name(text), app.file_category(text) from public;

create function public.request_file_upload(org_id uuid, name text, size_bytes bigint, mime_type text) returns public.files
language plpgsql volatile security definer set search_path = ''
as $$
declare
  id uuid := gen_random_uuid();
  bucket storage.buckets;
  max_file bigint;
  f public.files;
begin
  -- members and API keys (a key's file has no uploaded_by: the audit log names the key); not jobs
  if ((select auth.uid()) is null and app.current_api_key_id() is null)
     or not app.has_permission(request_file_upload.org_id, 'files.write') then
    raise exception 'files.write is required in organization %', request_file_upload.org_id using errcode = '42501';
  end if;
  if name is null or length(name) not between 1 and 255 or name ~ '[/\\[:cntrl:]]' or name in ('.', '..') then
    raise exception 'a file name is 1 to 255 characters without slashes or control characters' using errcode = 'FL004';
  end if;
  select * into bucket from storage.buckets b where b.id = 'files';
  if mime_type is null or not mime_type = any (bucket.allowed_mime_types) then
    raise exception 'files of type % are not accepted', mime_type using errcode = 'FL002';
  end if;
  select t.max_file_size_bytes into max_file
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = request_file_upload.org_id;
  if size_bytes is null or size_bytes <= 0 or size_bytes > least(max_file, bucket.file_size_limit) then
    raise exception 'a file must be 1 to % bytes on this plan', least(max_file, bucket.file_size_limit) using errcode = 'FL003';
  end if;
  insert into public.files (id, org_id, object_path, name, size_bytes, declared_mime, category, uploaded_by)
  values (id, request_file_upload.org_id,
          format('%s/%s/%s-%s', request_file_upload.org_id, to_char(now() at time zone 'utc', 'YYYY/MM/DD'), id, app.safe_file_name(name)),
          name, size_bytes, mime_type, app.file_category(mime_type), (select auth.uid()))
  returning * into f;                     -- the quota trigger reserves the bytes (FL001)
  return f;
end
$$;
revoke all on function public.request_file_upload(uuid, text, bigint, text) from public, anon;
grant execute on function public.request_file_upload(uuid, text, bigint, text) to authenticated;

-- Deleting is soft and goes through these (an UPDATE setting deleted_at could not pass the select
-- policy, which hides deleted files, as Postgres checks the new row against it).
create function public.delete_file(file_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  f public.files;
begin
  select * into f from public.files where id = delete_file.file_id and deleted_at is null for update;
  -- a file that is not clean is not there for those without files.write (the select policy's rule),
  -- whatever share they hold
  if f.id is null or (select auth.uid()) is null or not app.file_access(f, 'write')
     or (f.status <> 'clean' and not app.has_permission(f.org_id, 'files.write')) then
    raise exception 'file % not found', delete_file.file_id using errcode = 'FL005';
  end if;
  update public.files set deleted_at = now() where id = f.id;     -- its bytes stay counted until purged
  perform app.place_file_object(f);
end
$$;

create function public.restore_file(file_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  f public.files;
begin
  select * into f from public.files where id = restore_file.file_id and deleted_at is not null for update;
  if f.id is null or (select auth.uid()) is null or not app.has_permission(f.org_id, 'files.write') then
    raise exception 'file % not found', restore_file.file_id using errcode = 'FL005';
  end if;
  update public.files set deleted_at = null where id = f.id;       -- its bytes never stopped counting
  perform app.place_file_object(f);
end
$$;
revoke all on function public.delete_file(uuid), public.restore_file(uuid) from public, anon;
grant execute on function public.delete_file(uuid), public.restore_file(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- An object of the `files` bucket is replaced only while its file is still pending (a new
-- version is a new upload): file processing settles a file once, from the object the upload
-- created, and an overwrite afterwards (an upsert, directly or through a signed upload URL issued
-- with upsert) would serve new, unscanned bytes as `clean` with the old size and checksum. A move
-- (to trash and back) is not an overwrite.
create function app.refuse_processed_file_overwrite() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.bucket_id = old.bucket_id and new.name = old.name
     and exists (select 1 from public.files f where f.object_path = old.name and f.status <> 'pending') then
    raise exception 'file % was already processed; upload a new file instead', old.name using errcode = 'FL006';
  end if;
  return new;
end
$$;
revoke all on function app.refuse_processed_file_overwrite() from public;
create trigger refuse_processed_file_overwrite before update on storage.objects
  for each row when (old.bucket_id = 'files') execute function app.refuse_processed_file_overwrite();

-- An object written at a pending file's path may not be larger than the file's reservation,
-- whoever writes it (the insert policy checks the path, not the size).
create function app.refuse_upload_over_reservation() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  reserved bigint := (select f.size_bytes from public.files f where f.object_path = new.name and f.status = 'pending');
begin
  if reserved is not null and jsonb_typeof(new.metadata -> 'size') = 'number' and (new.metadata ->> 'size')::numeric > reserved then
    raise exception 'the upload is larger than the % bytes reserved for file %', reserved, new.name using errcode = 'FL007';
  end if;
  return new;
end
$$;
revoke all on function app.refuse_upload_over_reservation() from public;
create trigger refuse_upload_over_reservation before insert or update of metadata on storage.objects
  for each row when (new.bucket_id = 'files') execute function app.refuse_upload_over_reservation();

-- Asks the worker to put a file's object where its state says (files, or trash when deleted).
-- Without the worker's queue (a database migrated before its worker) the daily sweep does it.
create function app.place_file_object(f public.files) returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if f.status = 'clean' and to_regclass('pgboss.queue') is not null
     and exists (select 1 from pgboss.queue where name = 'files.place') then
    perform app.enqueue_job('files.place', jsonb_build_object('org_id', f.org_id, 'file_id', f.id));
  end if;
end
$$;
revoke all on function app.place_file_object(public.files) from public;

-- Where a file's objects belong, for the files.place job in its request context: a clean file of
-- the job's own organization, deleted or not (the select policy hides deleted files from every
-- caller, and the job moves them into and out of the trash).
create function app.file_placement(file_id uuid)
returns table (org_id uuid, id uuid, object_path text, thumbnail_path text, deleted boolean)
language sql stable security definer set search_path = ''
as $$
  select f.org_id, f.id, f.object_path, f.thumbnail_path, f.deleted_at is not null
  from public.files f
  where f.id = file_placement.file_id and f.status = 'clean' and f.org_id = (app.job_principal()).org_id
    and app.has_permission(f.org_id, 'files.read')
$$;
revoke all on function app.file_placement(uuid) from public;
grant execute on function app.file_placement(uuid) to authenticated;

-- The files sweep's last step, once the objects are gone from trash.
create function app.forget_deleted_file(file_id uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  delete from public.files f using public.organizations o, public.subscription_tiers t
  where f.id = forget_deleted_file.file_id and o.id = f.org_id and t.tier = o.tier
    and f.deleted_at < now() - make_interval(days => t.retention_days);
  return found;
end
$$;
revoke all on function app.forget_deleted_file(uuid) from public;
grant execute on function app.forget_deleted_file(uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Catalog rows
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types) values
  ('files', 'files', false, 524288000, array[
    'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain', 'text/csv', 'text/markdown',
    'application/json', 'application/zip', 'audio/mpeg', 'video/mp4',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    'application/vnd.openxmlformats-officedocument.presentationml.presentation']),
  -- infected files, moved here by the service; no policy lets anyone else read it
  ('quarantine', 'quarantine', false, 524288000, null)
on conflict (id) do nothing;


insert into storage.buckets (id, name, public, file_size_limit)
values ('trash', 'trash', false, 524288000)
on conflict (id) do nothing;
