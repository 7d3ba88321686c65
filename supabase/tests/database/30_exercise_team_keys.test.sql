-- Issue 16, item 11: another organization's team names and team members cannot be probed through
-- key collisions: a row naming a foreign exercise or team is refused by the foreign key (23503),
-- the same answer whether or not the name or member exists there.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(4);

select tests.create_user(e) from unnest(array['owner@tk.test', 'owner@tko.test', 'both@tk.test']) e;
create temp table o as select tests.create_org('owner@tk.test', 'teams-a') a, tests.create_org('owner@tko.test', 'teams-b') b;
grant select on o to authenticated;
select set_config('request.jwt.claims', '', true);
select tests.add_members((select a from o), 'both@tk.test', 'student');
select tests.add_members((select b from o), 'both@tk.test', 'student');
create temp table x as select gen_random_uuid() exercise, gen_random_uuid() team;
grant select on x to authenticated;
insert into public.exercises (id, org_id, title) values ((select exercise from x), (select a from o), 'Drill');
insert into public.exercise_teams (id, org_id, exercise_id, name) values ((select team from x), (select a from o), (select exercise from x), 'Red');
insert into public.exercise_team_members (org_id, team_id, user_id) values ((select a from o), (select team from x), tests.user_id('both@tk.test'));

select tests.authenticate_as('owner@tko.test');
select throws_ok($$ insert into public.exercise_teams (org_id, exercise_id, name) values ((select b from o), (select exercise from x), 'Red') $$,
                 '23503', null, 'an existing team name of another organization answers as a missing exercise');
select throws_ok($$ insert into public.exercise_teams (org_id, exercise_id, name) values ((select b from o), (select exercise from x), 'Blue') $$,
                 '23503', null, 'as does a name that does not exist');
select throws_ok($$ insert into public.exercise_team_members (org_id, team_id, user_id) values ((select b from o), (select team from x), tests.user_id('both@tk.test')) $$,
                 '23503', null, 'a member of another organization''s team answers as a missing team');
reset role;
select tests.authenticate_as('owner@tk.test');
select throws_ok($$ insert into public.exercise_teams (org_id, exercise_id, name) values ((select a from o), (select exercise from x), 'Red') $$,
                 '23505', null, 'within the organization, names stay unique per exercise');
reset role;

select * from finish();
rollback;
