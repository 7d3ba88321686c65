-- The audit log: one row per changed row of every tenant table, written by triggers, so nothing
-- that changes tenant data (RPCs, direct table writes, the service, jobs) escapes it. It records
-- who (the user, or the API key), the organization, what (table, row, action, changed columns with
-- old and new values), when, and from where (IP, user agent and request id from the
-- `request.headers` that PostgREST and the project's request context set). No role may change or
-- delete entries; members holding audit.read see their own organization's entries.

create schema audit;
comment on schema audit is 'Append-only audit log of tenant data; exposed read-only under RLS.';
grant usage on schema audit to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Where the request came from. request.headers is set by PostgREST (and the request context);
-- it is outside any constraint, so a malformed value yields nulls rather than a failed write.

-- How many proxies append to x-forwarded-for before the database sees it (the database setting
-- app.trusted_proxy_hops, default 1: the API gateway; behind a CDN and a gateway, 2).
create function app.trusted_proxy_hops() returns integer
language sql stable set search_path = ''
as $$
  select case when coalesce(current_setting('app.trusted_proxy_hops', true), '') ~ '^[1-9]$'
              then current_setting('app.trusted_proxy_hops', true)::integer else 1 end
$$;

create function app.audit_request_origin(out ip inet, out user_agent text, out request_id text)
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

create table audit.log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  org_id uuid,                           -- no foreign key: entries outlive their organization
  actor_user_id uuid,
  actor_api_key_id uuid,
  db_role text not null,
  table_name text not null,
  row_id text not null,
  action text not null check (action in ('INSERT', 'UPDATE', 'DELETE')),
  changed_columns text[] not null,
  old_values jsonb,
  new_values jsonb,
  ip inet,
  user_agent text,
  request_id text,
  transaction_id bigint not null default txid_current(),
  forwarded_for text default app.audit_forwarded_for()
);
comment on column audit.log.forwarded_for is 'The request''s x-forwarded-for as received (client-written on the left); ip is the trusted entry.';
create index log_org_time_idx on audit.log (org_id, occurred_at desc, id desc);
create index log_actor_idx on audit.log (actor_user_id, occurred_at desc) where actor_user_id is not null;

-- ---------------------------------------------------------------------------------------------
-- Trigger arguments: org column, key columns (comma-separated), hidden columns never recorded
-- (secrets such as hashes), quiet columns whose changes alone are not worth an entry.
create function app.audit_record_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  org_column text := tg_argv[0];
  key_columns text[] := string_to_array(tg_argv[1], ',');
  hidden text[] := string_to_array(coalesce(tg_argv[2], ''), ',');
  quiet text[] := array['updated_at', 'updated_by'] || string_to_array(coalesce(tg_argv[3], ''), ',');
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) - hidden end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) - hidden end;
  row_data jsonb := coalesce(new_row, old_row);
  changed text[];
  origin record;
  claims jsonb := (select auth.jwt());
  actor uuid := (select auth.uid());
begin
  if tg_op = 'UPDATE' then
    select array_agg(k order by k) into changed
    from jsonb_object_keys(new_row) k
    where new_row -> k is distinct from old_row -> k and not k = any (quiet);
    if changed is null then
      return null;
    end if;
    old_row := (select jsonb_object_agg(k, old_row -> k) from unnest(changed) k);
    new_row := (select jsonb_object_agg(k, new_row -> k) from unnest(changed) k);
  else
    changed := array(select k from jsonb_object_keys(row_data) k order by k);
  end if;
  origin := app.audit_request_origin();

  insert into audit.log (org_id, actor_user_id, actor_api_key_id, db_role, table_name, row_id, action,
                         changed_columns, old_values, new_values, ip, user_agent, request_id)
  values (
    (row_data ->> org_column)::uuid,
    actor,
    case when actor is null then nullif(claims ->> 'api_key_id', '')::uuid end,
    case current_setting('role') when 'none' then session_user::text else current_setting('role') end,
    format('%I.%I', tg_table_schema, tg_table_name),
    case when cardinality(key_columns) = 1 then row_data ->> key_columns[1]
         else (select jsonb_object_agg(k, row_data -> k) from unnest(key_columns) k)::text end,
    tg_op,
    changed,
    case when tg_op <> 'INSERT' then old_row end,
    case when tg_op <> 'DELETE' then new_row end,
    origin.ip, origin.user_agent, origin.request_id);
  return null;
end
$$;

-- Append-only. The one change allowed is app.purge_organization's redaction of the row contents
-- (old_values, new_values) of an organization that no longer exists, inside that function (a
-- transaction-local setting names it; no API role holds UPDATE on the log, so none can reach it).
create function app.audit_refuse_change() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
     and old.org_id is not null and current_setting('app.audit_redacting', true) = old.org_id::text
     and not exists (select 1 from public.organizations where id = old.org_id)
     and new.old_values is null and new.new_values is null
     and (to_jsonb(new) - '{old_values,new_values}'::text[]) = (to_jsonb(old) - '{old_values,new_values}'::text[]) then
    return new;
  end if;
  raise exception 'the audit log is append-only' using errcode = 'TN090';
end
$$;
create trigger append_only before update or delete on audit.log
  for each row execute function app.audit_refuse_change();
create trigger append_only_truncate before truncate on audit.log
  for each statement execute function app.audit_refuse_change();

-- Attaches the audit trigger to a tenant table (the triggers below and in later files are what
-- it makes).
create function app.enable_audit(target regclass, org_column text, key_columns text[],
                                 hidden_columns text[] default '{}', quiet_columns text[] default '{}')
returns void
language plpgsql set search_path = ''
as $$
begin
  execute format('create trigger audit_changes after insert or update or delete on %s for each row '
                 'execute function app.audit_record_change(%L, %L, %L, %L)',
                 target, org_column, array_to_string(key_columns, ','),
                 array_to_string(hidden_columns, ','), array_to_string(quiet_columns, ','));
end
$$;

revoke all on function app.trusted_proxy_hops(), app.audit_request_origin(), app.audit_forwarded_for(),
                       app.audit_record_change(), app.audit_refuse_change(),
                       app.enable_audit(regclass, text, text[], text[], text[]) from public;

create trigger audit_changes after insert or update or delete on public.organizations
  for each row execute function app.audit_record_change('id', 'id', '', '');
create trigger audit_changes after insert or update or delete on public.organization_members
  for each row execute function app.audit_record_change('org_id', 'org_id,user_id', '', '');
create trigger audit_changes after insert or update or delete on public.member_permissions
  for each row execute function app.audit_record_change('org_id', 'org_id,user_id,permission', '', '');
create trigger audit_changes after insert or update or delete on public.user_active_org
  for each row execute function app.audit_record_change('org_id', 'user_id', '', '');
create trigger audit_changes after insert or update or delete on public.invitations
  for each row execute function app.audit_record_change('org_id', 'id', 'token_hash', '');
create trigger audit_changes after insert or update or delete on public.api_keys
  for each row execute function app.audit_record_change('org_id', 'id', 'key_hash', 'last_used_at');

-- ---------------------------------------------------------------------------------------------
alter table audit.log enable row level security;
revoke all on audit.log from public, anon, authenticated, service_role;
grant select on audit.log to authenticated, service_role;

create policy "audit readers see their organization's entries" on audit.log
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('audit.read'))));

-- ---------------------------------------------------------------------------------------------
-- Deleting an organization for good leaves none of its data: it runs only once the tier's
-- retention after the soft delete has passed (the worker's tenant.delete checks, and so does this
-- function, after removing the organization's objects from storage), deletes the organization
-- and strips the row contents (old_values, new_values) from all of its audit entries: who, what,
-- when and where stay; what the rows held goes, for organizations flagged COPPA/FERPA too.
create function app.purge_organization(org uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  due boolean;
begin
  select o.deleted_at < now() - make_interval(days => t.retention_days) into due
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = org for update of o;
  if due is null then
    return false;                         -- already gone
  elsif not due then
    raise exception 'organization % is not past its retention period', org using errcode = 'TN041';
  end if;
  delete from public.organizations where id = org;
  perform set_config('app.audit_redacting', org::text, true);
  update audit.log set old_values = null, new_values = null
  where org_id = org and (old_values is not null or new_values is not null);
  perform set_config('app.audit_redacting', '', true);
  return true;
end
$$;
revoke all on function app.purge_organization(uuid) from public;
grant execute on function app.purge_organization(uuid) to service_role;
