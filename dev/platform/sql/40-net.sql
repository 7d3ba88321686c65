-- pg_net's schema and API, delivered by the stack's net worker (dev/platform/runtime/net-worker.ts)
-- instead of pg_net's background worker. Same contract: the functions return a request id, the
-- queue row only becomes visible (and the request only leaves) after the transaction commits,
-- and the response lands in net._http_response under that id.
create schema if not exists net;
grant usage on schema net to postgres, anon, authenticated, service_role, supabase_functions_admin;

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'net' and t.typname = 'http_method') then
    create domain net.http_method as text
      check (value ilike 'get' or value ilike 'post' or value ilike 'delete');
  end if;
end
$$;

create unlogged table if not exists net.http_request_queue (
  id bigserial primary key,
  method net.http_method not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create unlogged table if not exists net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index if not exists _http_response_created_idx on net._http_response (created);

-- Appends url-encoded params to a url, as pg_net does.
create or replace function net._urlencode_params(url text, params jsonb) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when params is null or params = '{}'::jsonb then url
    else url || case when position('?' in url) > 0 then '&' else '?' end || (
      select string_agg(
        replace(replace(replace(k, '%', '%25'), '&', '%26'), '=', '%3D') || '=' ||
        replace(replace(replace(replace(v, '%', '%25'), '&', '%26'), '=', '%3D'), ' ', '%20'), '&')
      from jsonb_each_text(params) as e(k, v))
  end
$$;

create or replace function net._enqueue(method text, url text, headers jsonb, body bytea, timeout_milliseconds integer)
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  request_id bigint;
begin
  if url is null or url !~* '^https?://' then
    raise exception 'net: url must start with http:// or https://, got %', coalesce(url, 'null')
      using errcode = '22023';
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (method, url, coalesce(headers, '{}'::jsonb), body, coalesce(timeout_milliseconds, 5000))
  returning id into request_id;
  -- Delivered on commit only; the worker also polls, so a lost notification delays, never drops.
  perform pg_notify('net_http_request_queue', request_id::text);
  return request_id;
end
$$;

create or replace function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql volatile strict
security definer
set search_path = ''
as $$
  select net._enqueue('GET', net._urlencode_params(url, params), headers, null, timeout_milliseconds)
$$;

create or replace function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql volatile
security definer
set search_path = ''
as $$
  select net._enqueue('POST', net._urlencode_params(url, params), headers,
                      convert_to(coalesce(body, '{}'::jsonb)::text, 'UTF8'), timeout_milliseconds)
$$;

create or replace function net.http_delete(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql volatile strict
security definer
set search_path = ''
as $$
  select net._enqueue('DELETE', net._urlencode_params(url, params), headers, null, timeout_milliseconds)
$$;

revoke all on function net._enqueue(text, text, jsonb, bytea, integer) from public;
grant execute on function net.http_get(text, jsonb, jsonb, integer),
                          net.http_post(text, jsonb, jsonb, jsonb, integer),
                          net.http_delete(text, jsonb, jsonb, integer)
  to postgres, anon, authenticated, service_role, supabase_functions_admin;
grant select on net._http_response to postgres, service_role;
