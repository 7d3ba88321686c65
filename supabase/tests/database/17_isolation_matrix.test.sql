-- The isolation matrix: for every tenant table (found in the catalog, so a new table joins the
-- matrix by existing) and for select, insert, update and delete, organization A's owner, an
-- outsider and anon cannot see or change organization B's rows; a student cannot change other
-- members' rows of their own organization; service_role sees everything.
-- Writes are tried twice. Filtered and with `returning`, as a client writes them, Postgres applies
-- the table's SELECT policies too; so each UPDATE and DELETE is also tried with no WHERE and no
-- RETURNING, which only the UPDATE or DELETE policy stands in front of, and judged by the victim's
-- rows as the superuser sees them afterwards (their ctid and contents: an update that wrote the
-- same value still moves the row). Inserts carry a copy of a victim's row taken as the superuser
-- before the attacker's role is set (as the attacker the row is invisible, and the copy was empty).
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(5 + 26 * 25);

select tests.create_user(e) from unnest(array['owner@ma.test', 'student@ma.test', 'teacher@ma.test', 'owner@mb.test',
                                              'member@mb.test', 'outsider@m.test']) e;
create temp table o as select tests.create_org('owner@ma.test', 'matrix-a') a, tests.create_org('owner@mb.test', 'matrix-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'student@ma.test', 'student', 'teacher@ma.test', 'teacher');
select tests.add_members((select b from o), 'member@mb.test', 'teacher');
-- Rows in every tenant table, for both organizations
select tests.authenticate_as('owner@mb.test');
insert into public.member_permissions (org_id, user_id, permission, granted) values ((select b from o), tests.user_id('member@mb.test'), 'audit.read', true);
select public.create_invitation((select b from o), 'invitee@mb.test', 'student');
select public.create_api_key((select b from o), 'B sync', array['org.read']);
with e as (insert into public.exercises (org_id, title) values ((select b from o), 'B drill') returning org_id, id),
     t as (insert into public.exercise_teams (org_id, exercise_id, name) select org_id, id, 'Blue' from e returning org_id, id)
insert into public.exercise_team_members (org_id, team_id, user_id) select org_id, id, tests.user_id('member@mb.test') from t;
with up as (select * from public.request_file_upload((select b from o), 'B notes.txt', 10, 'text/plain'))
insert into public.file_shares (org_id, file_id, grantee_role, access) select org_id, id, 'student', 'read' from up;
reset role;
select tests.authenticate_as('owner@ma.test');
insert into public.member_permissions (org_id, user_id, permission, granted) values ((select a from o), tests.user_id('teacher@ma.test'), 'audit.read', true);
select public.create_invitation((select a from o), 'invitee@ma.test', 'student');
select public.create_api_key((select a from o), 'A sync', array['org.read']);
with e as (insert into public.exercises (org_id, title) values ((select a from o), 'A drill') returning org_id, id),
     t as (insert into public.exercise_teams (org_id, exercise_id, name) select org_id, id, 'Red' from e returning org_id, id)
insert into public.exercise_team_members (org_id, team_id, user_id) select org_id, id, tests.user_id('teacher@ma.test') from t;
with up as (select * from public.request_file_upload((select a from o), 'A notes.txt', 10, 'text/plain'))
insert into public.file_shares (org_id, file_id, grantee_role, access) select org_id, id, 'student', 'read' from up;
reset role;

insert into public.data_exports (org_id) values ((select a from o)), ((select b from o));
-- files become visible once clean; each gets a first version
update public.files set status = 'clean', sha256 = repeat('0', 64) where org_id in ((select a from o), (select b from o));
insert into public.file_versions (org_id, file_id, version, object_path, size_bytes, sha256)
select org_id, id, 1, object_path, size_bytes, sha256 from public.files where org_id in ((select a from o), (select b from o));
insert into public.file_texts (file_id, org_id, content) select id, org_id, 'notes' from public.files where org_id in ((select a from o), (select b from o));
-- notifications to everyone (with their deliveries), a preference and a template in each organization
select app.notify(org, 'announcement.posted', 'Hello', 'Welcome', '{}', '{"everyone": true}') from unnest(array[(select a from o), (select b from o)]) org;
select app.notify(org, 'announcement.broadcast', 'Hello all', 'Welcome', '{}', '{"everyone": true}') from unnest(array[(select a from o), (select b from o)]) org;
insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
select org_id, user_id, '*', 'email', false from public.organization_members where org_id in ((select a from o), (select b from o));
insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end)
select org_id, user_id, '22:00', '07:00' from public.organization_members where org_id in ((select a from o), (select b from o));
insert into public.notification_templates (org_id, type, subject, body)
select org, 'announcement.posted', 'News: {{title}}', '{{body}}' from unnest(array[(select a from o), (select b from o)]) org;
-- an event from every member, rolled up
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
select org_id, user_id, 'page.viewed', now(), '{"path": "/"}' from public.organization_members where org_id in ((select a from o), (select b from o));
select app.rollup_analytics();
select app.track_usage();

-- Tenant tables and the column that names their organization
create temp table tenant_tables as
select c.oid::regclass as tbl, case when c.oid = 'public.organizations'::regclass then 'id' else 'org_id' end as org_col,
       (select col.attname from pg_attribute col
        where col.attrelid = c.oid and col.attnum > 0 and not col.attisdropped and col.attidentity = '' and col.attgenerated = ''
          and col.attname not in ('id', 'org_id')
        -- one clients may update, and outside any unique key (a value written to every row must not collide)
        order by has_column_privilege('authenticated', c.oid, col.attnum, 'UPDATE') desc,
                 exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisunique and col.attnum = any (i.indkey)),
                 col.attnum limit 1) as some_col,
       (select string_agg(quote_ident(col.attname), ', ' order by col.attnum) from pg_attribute col
        where col.attrelid = c.oid and col.attnum > 0 and not col.attisdropped and col.attidentity = '' and col.attgenerated = '') as insertable,
       -- the column naming the member a row belongs to, where there is one
       (select col.attname from pg_attribute col where col.attrelid = c.oid and col.attname in ('user_id', 'recipient_id') and not col.attisdropped
        order by col.attname desc limit 1) as user_col,
       exists (select 1 from pg_attribute col where col.attrelid = c.oid and col.attname = 'id' and col.atttypid = 'uuid'::regtype) as has_uuid_id
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname in ('public', 'audit')
  and (c.oid = 'public.organizations'::regclass
       or exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped));
grant select on tenant_tables to authenticated, anon, service_role;
select is((select count(*)::int from tenant_tables), 26, 'the matrix covers every tenant table');

-- The victim's rows of a table as the superuser sees them: organization `org`'s, less those of
-- `exclude_user` where the table names a member (a student's own rows are theirs to change).
create function pg_temp.victim_rows(t tenant_tables, org uuid, exclude_user uuid) returns text
language sql as $$
  select format('select x, x.ctid from %s x where %I = %L %s', t.tbl, t.org_col, org,
                case when exclude_user is not null and t.user_col is not null
                     then format('and %I is distinct from %L', t.user_col, exclude_user) else '' end)
$$;

-- The victim's rows, their ctid and contents, fingerprinted; read as the definer (the superuser),
-- whoever calls it.
create function pg_temp.fingerprint(victim_rows text) returns text
language plpgsql security definer as $$
declare
  f text;
begin
  execute format($f$select md5(coalesce(string_agg(v.x::text || v.ctid::text, ',' order by v.ctid), '')) from (%s) v(x, ctid)$f$,
                 victim_rows) into f;
  return f;
end $$;

-- Runs one statement as the current role and undoes it (a write that got through must not change
-- what the next attempt meets): 'denied' when refused or when it touched no row, 'allowed' when it
-- touched rows, 'error <code>' for anything else (which fails the matrix).
create function pg_temp.attempt(statement text) returns text language plpgsql as $$
declare
  touched bigint;
begin
  begin
    execute format('with r as (%s) select count(*) from r', statement) into touched;
    raise exception using errcode = 'TSTUN', message = touched::text;
  exception
    when sqlstate 'TSTUN' then return case when sqlerrm::bigint > 0 then 'allowed' else 'denied' end;
  end;
exception
  when insufficient_privilege then return 'denied';
  when others then return 'error ' || sqlstate || ': ' || sqlerrm;
end $$;

-- Runs a write without WHERE or RETURNING as the current role and undoes it: 'allowed' when the
-- victim's rows changed, 'denied' when they did not (the role's own rows may have), 'error <code>'
-- for anything but a refusal.
create function pg_temp.try_unfiltered(statement text, victim_rows text) returns text language plpgsql as $$
declare
  before text := pg_temp.fingerprint(victim_rows);
begin
  begin
    execute statement;
    raise exception using errcode = 'TSTUN', message = (pg_temp.fingerprint(victim_rows) is distinct from before)::text;
  exception
    when sqlstate 'TSTUN' then return case when sqlerrm = 'true' then 'allowed' else 'denied' end;
  end;
exception
  when insufficient_privilege then return 'denied';
  when others then return 'error ' || sqlstate || ': ' || sqlerrm;
end $$;

-- Triggers off (session_replication_role, the superuser's to set) or on again, until the transaction ends.
create function pg_temp.triggers(enabled boolean) returns void
language sql security definer as $$ select set_config('session_replication_role', case when enabled then 'origin' else 'replica' end, true) $$;

-- As try_unfiltered; when a rule guarding the role's own rows refused the whole statement (deleting
-- every member of one's own organization leaves it without an owner, TN001), the statement is tried
-- again with triggers off, so that the policy alone decides what it reaches.
create function pg_temp.attempt_unfiltered(statement text, victim_rows text) returns text language plpgsql as $$
declare
  outcome text := pg_temp.try_unfiltered(statement, victim_rows);
begin
  if outcome like 'error %' then
    perform pg_temp.triggers(false);
    outcome := pg_temp.try_unfiltered(statement, victim_rows);
    perform pg_temp.triggers(true);
  end if;
  return outcome;
end $$;

-- Every attempt on the victim's rows of every table, written as the superuser (who sees the rows
-- the inserts copy and the values the updates write) before anyone's role is set.
create temp table attempts (actor text, tbl text, op text, statement text, victim_rows text);
grant select on attempts to authenticated, anon, service_role;
create function pg_temp.plan_attempts(actor text, ops text[], org uuid, own_org uuid, exclude_user uuid default null) returns void
language plpgsql as $$
declare
  t tenant_tables;
  others text;
  victim_row jsonb;
  own_value text;
  insertable text;
begin
  for t in select * from tenant_tables loop
    others := case when exclude_user is not null and t.user_col is not null
                   then format('and %I is distinct from %L', t.user_col, exclude_user) else '' end;
    execute format('select to_jsonb(x) from %s x where %I = %L %s limit 1', t.tbl, t.org_col, org, others) into victim_row;
    select string_agg(quote_ident(col.attname), ', ' order by col.attnum) into insertable from pg_attribute col
    where col.attrelid = t.tbl and col.attnum > 0 and not col.attisdropped and col.attidentity = '' and col.attgenerated = ''
      and has_column_privilege(case when actor = 'anon' then 'anon' when actor = 'service_role' then 'service_role' else 'authenticated' end,
                               t.tbl, col.attnum, 'INSERT');
    -- a value the attacker's own organization has in the column, as a literal: the update reads no column
    execute format('select quote_nullable(x.%I) || %L from %s x where %I = %L limit 1', t.some_col,
                   '::' || (select format_type(atttypid, atttypmod) from pg_attribute where attrelid = t.tbl and attname = t.some_col),
                   t.tbl, t.org_col, own_org) into own_value;
    insert into attempts
    select plan_attempts.actor, t.tbl::text, s.op, s.statement, pg_temp.victim_rows(t, org, exclude_user) from (values
      ('select', format('select 1 from %s where %I = %L', t.tbl, t.org_col, org)),
      ('update', format('update %s set %I = %I where %I = %L %s returning 1', t.tbl, t.some_col, t.some_col, t.org_col, org, others)),
      ('delete', format('delete from %s where %I = %L %s returning 1', t.tbl, t.org_col, org, others)),
      -- (the service, the judge's positive control, writes each row's own value: every row of the
      -- database is its to reach, and one value written to all of them may break a constraint)
      ('update, no filter', case when actor = 'service_role' then format('update %s set %I = %I', t.tbl, t.some_col, t.some_col)
                                 else format('update %s set %I = %s', t.tbl, t.some_col, coalesce(own_value, 'default')) end),
      ('delete, no filter', format('delete from %s', t.tbl)),
      -- a copy of one of the victim's rows, under a fresh id where the table has one, in the columns
      -- the role may insert (a column it may not would be refused before the policy is asked)
      ('insert', format('insert into %1$s (%2$s) select %2$s from jsonb_populate_record(null::%1$s, %3$L) returning 1',
                        t.tbl, coalesce(insertable, t.insertable),
                        victim_row || case when t.has_uuid_id then jsonb_build_object('id', gen_random_uuid()) else '{}' end))
    ) s(op, statement)
    where s.op = any (ops);
  end loop;
end $$;

select pg_temp.plan_attempts(a.actor, a.ops, (select b from o), (select a from o))
from (values ('owner of A', '{select,insert,update,delete,"update, no filter","delete, no filter"}'::text[]),
             ('outsider', '{select,insert,update,delete,"update, no filter","delete, no filter"}'),
             ('anon', '{select,insert,update,delete,"update, no filter","delete, no filter"}'),
             ('service_role', '{select,"update, no filter"}')) a(actor, ops);
select pg_temp.plan_attempts('student of A (own org)', '{insert,update,delete,"update, no filter","delete, no filter"}',
                             (select a from o), (select a from o), tests.user_id('student@ma.test'));

-- The matrix is judged against a superuser's view of B's rows: each table must have some.
select is_empty($$ select t.tbl::text from tenant_tables t
                   where not exists (select 1 from attempts a where a.actor = 'owner of A' and a.tbl = t.tbl::text and a.op = 'select'
                                                                and pg_temp.attempt(a.statement) = 'allowed') $$,
  'organization B has rows in every tenant table');
select is_empty($$ select actor, tbl from attempts where op = 'insert' and statement like '%, NULL) returning 1' $$,
  'every insert carries a copy of a victim''s row');

create temp table results (actor text, tbl text, op text, outcome text);
grant all on results to authenticated, anon, service_role;
create function pg_temp.run_attempts(who text) returns void language sql as $$
  insert into results
  select a.actor, a.tbl, a.op,
         case when a.op like '%no filter' then pg_temp.attempt_unfiltered(a.statement, a.victim_rows) else pg_temp.attempt(a.statement) end
  from attempts a where a.actor = who order by a.tbl, a.op
$$;

select tests.authenticate_as('owner@ma.test');
select pg_temp.run_attempts('owner of A');
reset role;
select tests.authenticate_as('outsider@m.test');
select pg_temp.run_attempts('outsider');
reset role;
select tests.as_anon();
select pg_temp.run_attempts('anon');
reset role;
select tests.authenticate_as('student@ma.test');
select pg_temp.run_attempts('student of A (own org)');
reset role;
select tests.as_service();
select pg_temp.run_attempts('service_role');
reset role;

select is(r.outcome, 'denied', format('%s: %s on %s of B', r.actor, r.op, r.tbl))
from results r where r.actor in ('owner of A', 'outsider', 'anon') order by r.actor, r.tbl, r.op;
select is(r.outcome, 'denied', format('%s: %s on other members'' rows in %s', r.actor, r.op, r.tbl))
from results r where r.actor = 'student of A (own org)' order by r.tbl, r.op;
select is(r.outcome, 'allowed', format('%s: %s on %s of B', r.actor, r.op, r.tbl))
from results r where r.actor = 'service_role' and r.op = 'select' order by r.tbl;
-- The judge of unfiltered writes sees a write that gets through: the service's reaches B's rows
-- wherever it may update the column
select is(r.outcome, case when has_column_privilege('service_role', t.tbl, t.some_col, 'UPDATE') then 'allowed' else 'denied' end,
          format('%s: %s on %s of B', r.actor, r.op, r.tbl))
from results r join tenant_tables t on t.tbl::text = r.tbl where r.actor = 'service_role' and r.op = 'update, no filter' order by r.tbl;

-- What a teacher may and a student may not, in the same organization
select tests.authenticate_as('teacher@ma.test');
select isnt_empty($$ select 1 from public.invitations $$, 'a teacher sees the organization''s invitations');
reset role;
select tests.authenticate_as('student@ma.test');
select is_empty($$ select 1 from public.invitations $$, 'a student does not');
reset role;

select * from finish();
rollback;
