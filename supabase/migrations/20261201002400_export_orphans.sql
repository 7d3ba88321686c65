-- A data export whose job is gone no longer blocks the next one (issue 16, item 12). An export
-- stayed queued or running when its job failed for good, was cancelled, or was refused by the
-- worker (an x-request-id over 128 characters made its correlation id invalid), and TN050 then
-- refused every later export of the organization.
-- - app.enqueue_job replaces a correlation id the worker would refuse instead of passing it on.
-- - Before refusing with TN050, request_data_export marks failed the organization's unfinished
--   exports whose job is no longer queued, retrying or active (or never existed), with the reason.

create or replace function app.enqueue_job(queue text, payload jsonb, priority integer default 0,
                                start_after_seconds integer default 0, singleton_key text default null)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
  q record;
  job_id uuid := gen_random_uuid();
  body jsonb := payload;
  inserted integer;
begin
  if to_regclass('pgboss.queue') is null then
    raise exception 'the job queue is not installed yet: start the worker once' using errcode = 'JB000';
  end if;
  execute 'select * from pgboss.queue where name = $1' into q using enqueue_job.queue;
  if q.name is null then
    raise exception 'unknown queue %', enqueue_job.queue using errcode = 'JB001';
  end if;
  if jsonb_typeof(body) is distinct from 'object' or not body ? 'org_id'
     or (body ->> 'org_id' is not null and body ->> 'org_id' !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$') then
    raise exception 'a job payload is an object with org_id (a uuid or null)' using errcode = 'JB002';
  end if;
  -- a correlation id the worker would refuse (not a string of 1 to 128 characters) is replaced, not passed on
  if jsonb_typeof(body -> 'correlation_id') is distinct from 'string' or length(body ->> 'correlation_id') not between 1 and 128 then
    body := body || jsonb_build_object('correlation_id', gen_random_uuid()::text);
  end if;
  if start_after_seconds < 0 or priority not between -1000 and 1000 then
    raise exception 'priority must be within -1000..1000 and start_after_seconds not negative' using errcode = 'JB002';
  end if;

  execute format(
    'insert into pgboss.%I (id, name, data, priority, start_after, created_on, singleton_key, expire_seconds,
                           deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max,
                           policy, dead_letter, heartbeat_seconds)
     select $1, q.name, $2, $3, pgboss.job_now() + make_interval(secs => $4), pgboss.job_now(), $5, q.expire_seconds,
            q.deletion_seconds, pgboss.job_now() + make_interval(secs => $4) + q.retention_seconds * interval ''1s'',
            q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds
     from pgboss.queue q where q.name = $6
     on conflict do nothing', q.table_name)
  using job_id, body, priority, start_after_seconds, singleton_key, q.name;
  get diagnostics inserted = row_count; -- EXECUTE does not set FOUND
  if inserted = 0 then
    return null; -- a singleton already queued: pg-boss's send answers null too
  end if;
  if q.notify and start_after_seconds = 0 then
    perform pg_notify('pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24), q.name);
  end if;
  return job_id;
end
$$;

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

create or replace function public.request_data_export(org_id uuid) returns public.data_exports
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
