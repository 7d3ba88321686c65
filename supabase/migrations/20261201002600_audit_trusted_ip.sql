-- The audit log's IP is the address a trusted proxy saw, not one the client chose (issue 16,
-- item 18). It was the first x-forwarded-for entry, which the client writes; now it is the entry
-- app.trusted_proxy_hops() from the right (the database setting app.trusted_proxy_hops, default
-- 1: the address the API gateway appended; behind a CDN and a gateway, 2). The raw header is kept
-- apart in audit.log.forwarded_for, for investigations.

create function app.trusted_proxy_hops() returns integer
language sql stable set search_path = ''
as $$
  select case when coalesce(current_setting('app.trusted_proxy_hops', true), '') ~ '^[1-9]$'
              then current_setting('app.trusted_proxy_hops', true)::integer else 1 end
$$;

create or replace function app.audit_request_origin(out ip inet, out user_agent text, out request_id text)
language plpgsql stable set search_path = ''
as $$
declare
  headers jsonb;
begin
  headers := nullif(current_setting('request.headers', true), '')::jsonb;
  user_agent := left(headers ->> 'user-agent', 512);
  request_id := left(coalesce(headers ->> 'x-request-id', headers ->> 'sb-request-id'), 128);
  -- The client writes the left of x-forwarded-for; each proxy appends the address it saw. The
  -- address is the entry app.trusted_proxy_hops from the right (1: the one our gateway appended).
  ip := nullif(btrim((select h[greatest(cardinality(h) - app.trusted_proxy_hops() + 1, 1)]
                      from string_to_array(coalesce(headers ->> 'x-forwarded-for', headers ->> 'x-real-ip', ''), ',') h)), '')::inet;
exception when others then
  -- keep what was read before the bad value; an unparsable IP is simply unknown
  ip := null;
end
$$;

-- The raw header, as the request carried it (a default, so every writer of the log records it).
create function app.audit_forwarded_for() returns text
language plpgsql stable set search_path = ''
as $$
begin
  return left(nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-forwarded-for', 512);
exception when others then
  return null;
end
$$;
revoke all on function app.trusted_proxy_hops(), app.audit_forwarded_for() from public;
alter table audit.log add column forwarded_for text default app.audit_forwarded_for();
comment on column audit.log.forwarded_for is 'The request''s x-forwarded-for as received (client-written on the left); ip is the trusted entry.';
