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
select app.enable_audit('public.file_texts', 'org_id', '{file_id}', '{content,search}');

alter table public.file_texts enable row level security;
revoke all on public.file_texts from anon, authenticated;
grant select on public.file_texts to authenticated;
create policy "readers see the text of files they may read" on public.file_texts
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids()))
         and exists (select 1 from public.files f where f.id = file_id and f.deleted_at is null and f.status = 'clean'
                     and app.file_access(f, 'read')));
