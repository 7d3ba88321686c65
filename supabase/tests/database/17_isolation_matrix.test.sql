-- The isolation matrix: for every tenant table (found in the catalog, so a new table joins the
-- matrix by existing) and for select, insert, update and delete, organization A's owner, an
-- outsider and anon cannot see or change organization B's rows; a student cannot change other
-- members' rows of their own organization; service_role sees everything.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(4 + 26 * 16);

select tests.create_user(e) from unnest(array['owner@ma.test', 'student@ma.test', 'teacher@ma.test', 'owner@mb.test',
                                              'member@mb.test', 'outsider@m.test']) e;
create temp table o as select tests.create_org('owner@ma.test', 'matrix-a') a, tests.create_org('owner@mb.test', 'matrix-b') b;
grant select on o to authenticated, anon, service_role;
insert into public.organization_members (org_id, user_id, role) values
  ((select a from o), tests.user_id('student@ma.test'), 'student'),
  ((select a from o), tests.user_id('teacher@ma.test'), 'teacher'),
  ((select b from o), tests.user_id('member@mb.test'), 'teacher');
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
          and col.attname not in ('id', 'org_id') order by has_column_privilege('authenticated', c.oid, col.attnum, 'UPDATE') desc, col.attnum limit 1) as some_col,
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

-- Runs one statement as the current role: 'denied' when refused or when it touched no row,
-- 'allowed' when it touched rows, 'error <code>' for anything else (which fails the matrix).
create function pg_temp.attempt(statement text) returns text language plpgsql as $$
declare
  touched bigint;
begin
  execute format('with r as (%s) select count(*) from r', statement) into touched;
  return case when touched > 0 then 'allowed' else 'denied' end;
exception
  when insufficient_privilege then return 'denied';
  when others then return 'error ' || sqlstate || ': ' || sqlerrm;
end $$;

-- B's rows, as insert/update/delete/select statements against them.
create function pg_temp.statements(t tenant_tables, org uuid, exclude_user uuid default null)
returns table (op text, statement text) language sql as $$
  with others(clause) as (select case when exclude_user is not null and t.user_col is not null
                                      then format('and %I is distinct from %L', t.user_col, exclude_user) else '' end)
  select s.* from others, lateral (values
    ('select', format('select 1 from %s where %I = %L', t.tbl, t.org_col, org)),
    ('update', format('update %s set %I = %I where %I = %L %s returning 1', t.tbl, t.some_col, t.some_col, t.org_col, org, others.clause)),
    ('delete', format('delete from %s where %I = %L %s returning 1', t.tbl, t.org_col, org, others.clause)),
    -- a copy of one of the rows, under a fresh id where the table has one
    ('insert', format('insert into %1$s (%5$s) select %5$s from jsonb_populate_record(null::%1$s, '
                      '(select to_jsonb(x) || %2$L from %1$s x where %3$I = %4$L limit 1)) returning 1',
                      t.tbl, case when t.has_uuid_id then jsonb_build_object('id', gen_random_uuid()) else '{}' end, t.org_col, org, t.insertable))
  ) s(op, statement)
$$;

-- The matrix is judged against a superuser's view of B's rows: each table must have some.
select is_empty($$ select tbl::text from tenant_tables t
                   where not exists (select 1 from pg_temp.statements(t, (select b from o)) s
                                     where s.op = 'select' and pg_temp.attempt(s.statement) = 'allowed') $$,
  'organization B has rows in every tenant table');

create function pg_temp.outcomes(ops text[], org uuid, exclude_user uuid default null) returns table (tbl text, op text, outcome text)
language sql as $$
  select t.tbl::text, s.op, pg_temp.attempt(s.statement) from tenant_tables t, pg_temp.statements(t, org, exclude_user) s
  where s.op = any (ops)
$$;
create temp table results (actor text, tbl text, op text, outcome text);
grant all on results to authenticated, anon, service_role;

select tests.authenticate_as('owner@ma.test');
insert into results select 'owner of A', * from pg_temp.outcomes('{select,insert,update,delete}', (select b from o));
reset role;
select tests.authenticate_as('outsider@m.test');
insert into results select 'outsider', * from pg_temp.outcomes('{select,insert,update,delete}', (select b from o));
reset role;
select tests.as_anon();
insert into results select 'anon', * from pg_temp.outcomes('{select,insert,update,delete}', (select b from o));
reset role;
select tests.authenticate_as('student@ma.test');
insert into results select 'student of A (own org)', * from pg_temp.outcomes('{insert,update,delete}', (select a from o), tests.user_id('student@ma.test'));
reset role;
select tests.as_service();
insert into results select 'service_role', * from pg_temp.outcomes('{select}', (select b from o));
reset role;

select is(r.outcome, 'denied', format('%s: %s on %s of B', r.actor, r.op, r.tbl))
from results r where r.actor in ('owner of A', 'outsider', 'anon') order by r.actor, r.tbl, r.op;
select is(r.outcome, 'denied', format('%s: %s on other members'' rows in %s', r.actor, r.op, r.tbl))
from results r where r.actor = 'student of A (own org)' order by r.tbl, r.op;
select is(r.outcome, 'allowed', format('%s: %s on %s of B', r.actor, r.op, r.tbl))
from results r where r.actor = 'service_role' order by r.tbl;

-- What a teacher may and a student may not, in the same organization
select tests.authenticate_as('teacher@ma.test');
select isnt_empty($$ select 1 from public.invitations $$, 'a teacher sees the organization''s invitations');
reset role;
select tests.authenticate_as('student@ma.test');
select is_empty($$ select 1 from public.invitations $$, 'a student does not');
reset role;

select * from finish();
rollback;
