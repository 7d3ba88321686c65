-- Team keys carry the organization (issue 16, item 11). With unique (exercise_id, name) and
-- primary key (team_id, user_id), an outsider who knew another organization's exercise or team id
-- learnt from an upsert's 201 or 409 whether a team name, or a member in a team, existed there:
-- the uniqueness check ran before the foreign key that ties a row to the caller's organization.
-- With org_id in both keys a row of another organization never collides; the foreign keys then
-- refuse it (23503) whatever exists there.
alter table public.exercise_teams drop constraint exercise_teams_exercise_id_name_key,
  add constraint exercise_teams_org_id_exercise_id_name_key unique (org_id, exercise_id, name);
alter table public.exercise_team_members drop constraint exercise_team_members_pkey,
  add constraint exercise_team_members_pkey primary key (org_id, team_id, user_id);
