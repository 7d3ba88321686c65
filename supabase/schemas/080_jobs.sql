-- Jobs (pg-boss): enqueueing from SQL, and the admin RPCs through which members holding
-- jobs.manage list, retry and cancel their organization's jobs and replay its dead letters. (A job
-- acting for its organization is a caller the policy helpers know: app.job_principal.) The `pgboss`
-- schema belongs to pg-boss, which the worker installs and migrates on start; the functions here
-- resolve it at call time and raise JB000 until it exists.
-- Errors: JB000 queue store missing, JB001 unknown queue, JB002 bad payload, JB003 job not found,
-- JB004 job not in a state that allows the action (or a replay whose singleton key a waiting job holds).

-- ---------------------------------------------------------------------------------------------
-- Enqueueing from SQL (triggers, pg_cron, RPCs). pg-boss has no SQL API, so this writes the job
-- row the way pg-boss's own insert does: the queue's options as defaults, then a NOTIFY on
-- pg-boss's channel when the queue dispatches by LISTEN/NOTIFY. Like pg-boss's insert it skips a job
-- its queue's policy refuses (ON CONFLICT DO NOTHING: under `short`, a singleton key a job that has
-- not started holds) and answers null, as pg-boss's send does. The payload must carry org_id
-- (a uuid, or null for jobs over every organization) and gets a new correlation_id unless it has
-- one the worker accepts; the worker validates the rest with the job's zod schema and
-- dead-letters what fails.
create function app.enqueue_job(queue text, payload jsonb, priority integer default 0,
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
revoke all on function app.enqueue_job(text, jsonb, integer, integer, text) from public;
grant execute on function app.enqueue_job(text, jsonb, integer, integer, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Admin RPCs: an organization's own jobs, for members holding jobs.manage.
create function public.list_jobs(org_id uuid, job_state text default null, max_rows integer default 100)
returns table (id uuid, queue text, state text, priority integer, data jsonb, output jsonb, retry_count integer,
               retry_limit integer, created_on timestamptz, started_on timestamptz, completed_on timestamptz,
               source_queue text, source_id uuid)
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not app.has_permission(list_jobs.org_id, 'jobs.manage') then
    raise exception 'jobs.manage is required in organization %', list_jobs.org_id using errcode = '42501';
  end if;
  if to_regclass('pgboss.job') is null then
    return;
  end if;
  return query execute
    'select j.id, j.name, j.state::text, j.priority, j.data, j.output, j.retry_count, j.retry_limit, j.created_on,
            j.started_on, j.completed_on, j.source_name, j.source_id
     from pgboss.job j
     where j.data ->> ''org_id'' = $1::text and ($2::text is null or j.state::text = $2)
     order by j.created_on desc limit least(greatest($3, 1), 1000)'
  using list_jobs.org_id, list_jobs.job_state, list_jobs.max_rows;
end
$$;

-- The job, if it belongs to an organization where the caller holds jobs.manage; JB003 otherwise.
create function app.managed_job(job_id uuid, out name text, out state text, out data jsonb, out source_name text)
language plpgsql stable security definer set search_path = ''
as $$
begin
  if to_regclass('pgboss.job') is not null then
    execute 'select j.name, j.state::text, j.data, j.source_name from pgboss.job j where j.id = $1'
      into name, state, data, source_name using job_id;
  end if;
  if name is null or data ->> 'org_id' is null
     or not app.has_permission((data ->> 'org_id')::uuid, 'jobs.manage') then
    raise exception 'job % not found', job_id using errcode = 'JB003';
  end if;
end
$$;

-- Cancels a job that has not finished (pg-boss's cancel).
create function public.cancel_job(job_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  job record;
begin
  select * into job from app.managed_job(cancel_job.job_id);
  if job.state not in ('created', 'retry', 'active') then
    raise exception 'job % is % and cannot be cancelled', cancel_job.job_id, job.state using errcode = 'JB004';
  end if;
  execute 'update pgboss.job set completed_on = pgboss.job_now(), state = ''cancelled''
           where name = $1 and id = $2 and state < ''completed''' using job.name, cancel_job.job_id;
end
$$;

-- Runs a failed job once more (pg-boss's retry).
create function public.retry_job(job_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  job record;
begin
  select * into job from app.managed_job(retry_job.job_id);
  if job.state <> 'failed' then
    raise exception 'job % is %; only failed jobs are retried', retry_job.job_id, job.state using errcode = 'JB004';
  end if;
  execute 'update pgboss.job set state = ''retry'', retry_limit = retry_limit + 1, completed_on = null,
                  start_after = greatest(start_after, pgboss.job_now())
           where name = $1 and id = $2 and state = ''failed''' using job.name, retry_job.job_id;
end
$$;

-- Sends a dead letter's payload back to the queue it came from, and completes the dead letter. The
-- replay keeps the failed job's singleton key (pg-boss copies it onto the dead letter, and its own
-- redrive carries it over too): on a queue that keeps one waiting job per key (policy `short`) a
-- key-less replay would collapse with every other key-less job, and one with the key is refused
-- (JB004) while a job holding that key waits, leaving the dead letter to replay later.
create function public.replay_dead_letter(job_id uuid) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
  job record;
  dead_key text;
  replayed uuid;
begin
  select * into job from app.managed_job(replay_dead_letter.job_id);
  if job.source_name is null or job.state not in ('created', 'retry', 'failed') then
    raise exception 'job % is not a waiting dead letter', replay_dead_letter.job_id using errcode = 'JB004';
  end if;
  execute 'select singleton_key from pgboss.job where id = $1' into dead_key using replay_dead_letter.job_id;
  replayed := app.enqueue_job(job.source_name, job.data, singleton_key => dead_key);
  if replayed is null then
    raise exception 'job % is not replayed: queue % already has a waiting job with key %',
      replay_dead_letter.job_id, job.source_name, dead_key using errcode = 'JB004';
  end if;
  execute 'update pgboss.job set state = ''completed'', completed_on = pgboss.job_now(),
                  output = jsonb_build_object(''replayed_as'', $3::text)
           where name = $1 and id = $2' using job.name, replay_dead_letter.job_id, replayed;
  return replayed;
end
$$;

revoke all on function public.list_jobs(uuid, text, integer), public.cancel_job(uuid), public.retry_job(uuid),
                       public.replay_dead_letter(uuid), app.managed_job(uuid) from public, anon;
grant execute on function public.list_jobs(uuid, text, integer), public.cancel_job(uuid), public.retry_job(uuid),
                          public.replay_dead_letter(uuid) to authenticated;
