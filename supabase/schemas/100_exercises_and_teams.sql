-- Exercises and their teams: the live sessions a teacher runs, whose control and team feeds travel
-- over MQTT (org/{org}/exercise/{exercise}/control, .../team/{team}/feeds/{type}). Members see their
-- organization's exercises and teams; holders of exercises.control create and run them and put
-- members into teams. The broker's policy (110_mqtt_policy.sql) reads these tables.
-- org_id leads every key of a team row, so a row naming another organization's exercise or team
-- never collides with what exists there (which would tell an outsider it exists): the foreign
-- keys refuse it (23503) whatever exists.

create table public.exercises (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  title text not null check (length(btrim(title)) between 1 and 200),
  status text not null default 'draft' check (status in ('draft', 'running', 'finished')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  unique (org_id, id)
);
create index exercises_org_idx on public.exercises (org_id, created_at desc);
create index exercises_created_by_idx on public.exercises (created_by) where created_by is not null;
create index exercises_updated_by_idx on public.exercises (updated_by) where updated_by is not null;

create table public.exercise_teams (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null,
  exercise_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 100),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  -- a team lives in its exercise's organization
  foreign key (org_id, exercise_id) references public.exercises (org_id, id) on delete cascade,
  unique (org_id, exercise_id, name),
  unique (org_id, id)
);
create index exercise_teams_org_idx on public.exercise_teams (org_id);
create index exercise_teams_created_by_idx on public.exercise_teams (created_by) where created_by is not null;
create index exercise_teams_updated_by_idx on public.exercise_teams (updated_by) where updated_by is not null;

create table public.exercise_team_members (
  org_id uuid not null,
  team_id uuid not null,
  user_id uuid not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  primary key (org_id, team_id, user_id),
  foreign key (org_id, team_id) references public.exercise_teams (org_id, id) on delete cascade,
  -- only members of the organization join its teams, and leaving it leaves them
  foreign key (org_id, user_id) references public.organization_members (org_id, user_id) on delete cascade
);
create index exercise_team_members_org_idx on public.exercise_team_members (org_id);
create index exercise_team_members_user_idx on public.exercise_team_members (user_id);
create index exercise_team_members_created_by_idx on public.exercise_team_members (created_by) where created_by is not null;
create index exercise_team_members_updated_by_idx on public.exercise_team_members (updated_by) where updated_by is not null;

create trigger stamp_row before insert or update on public.exercises for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.exercise_teams for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.exercise_team_members for each row execute function app.stamp_row();

create trigger audit_changes after insert or update or delete on public.exercises
  for each row execute function app.audit_record_change('org_id', 'id', '', '');
create trigger audit_changes after insert or update or delete on public.exercise_teams
  for each row execute function app.audit_record_change('org_id', 'id', '', '');
create trigger audit_changes after insert or update or delete on public.exercise_team_members
  for each row execute function app.audit_record_change('org_id', 'team_id,user_id', '', '');

-- ---------------------------------------------------------------------------------------------
alter table public.exercises enable row level security;
alter table public.exercise_teams enable row level security;
alter table public.exercise_team_members enable row level security;
revoke all on public.exercises, public.exercise_teams, public.exercise_team_members from anon, authenticated;
grant select, delete on public.exercises, public.exercise_teams, public.exercise_team_members to authenticated;
grant insert (org_id, title, status), update (title, status) on public.exercises to authenticated;
grant insert (org_id, exercise_id, name), update (name) on public.exercise_teams to authenticated;
grant insert (org_id, team_id, user_id) on public.exercise_team_members to authenticated;

create policy "members see their organization's exercises" on public.exercises
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));
create policy "exercise runners create exercises" on public.exercises
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
create policy "exercise runners change exercises" on public.exercises
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('exercises.control'))))
  with check (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
create policy "exercise runners delete exercises" on public.exercises
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));

create policy "members see their organization's teams" on public.exercise_teams
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));
create policy "exercise runners create teams" on public.exercise_teams
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
create policy "exercise runners rename teams" on public.exercise_teams
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('exercises.control'))))
  with check (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
create policy "exercise runners delete teams" on public.exercise_teams
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));

create policy "members see who is in their organization's teams" on public.exercise_team_members
  for select to authenticated using (org_id = any (array(select app.user_org_ids())));
create policy "exercise runners put members into teams" on public.exercise_team_members
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
create policy "exercise runners take members out of teams" on public.exercise_team_members
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('exercises.control'))));
