-- Deleting a user who made things: the rows stay, their stamps (created_by, updated_by, and who
-- uploaded, revoked or accepted) become null, and a share given to them goes. The stamp triggers
-- restore a creator stamp on every other write; here they must let the foreign key clear it, or
-- the delete fails. And a stamp is still never cleared while its user exists.
begin;
create extension if not exists pgtap with schema extensions;
select plan(17);
\ir _helpers.sql

-- The maker owns a school and, as themselves, makes one row of every kind that names its maker.
select tests.create_org('maker@a.test', 'maker-school') as org \gset
select tests.add_members(:'org', 'keeper@a.test', 'owner', 'pupil@a.test', 'student');
select tests.user_id('maker@a.test') as maker \gset
select set_config('request.jwt.claims', json_build_object('sub', :'maker', 'role', 'authenticated')::text, true);
insert into public.member_permissions (org_id, user_id, permission, granted)
  values (:'org', tests.user_id('pupil@a.test'), 'files.write', true);
insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, revoked_at, revoked_by)
  values (:'org', 'probe', 'sk_abcdefgh', sha256('probe key'), '{events.write}', now(), :'maker');
insert into public.invitations (org_id, email, role, token_hash, expires_at, accepted_at, accepted_by)
  values (:'org', 'maker@a.test', 'teacher', sha256('probe invitation'), now() + interval '1 day', now(), :'maker');
insert into public.invitations (org_id, email, role, token_hash, expires_at, revoked_at, revoked_by)
  values (:'org', 'other@a.test', 'teacher', sha256('probe invitation 2'), now() + interval '1 day', now(), :'maker');
insert into public.data_exports (org_id) values (:'org');
insert into public.exercises (org_id, title) values (:'org', 'Fractions') returning id as exercise \gset
insert into public.exercise_teams (org_id, exercise_id, name) values (:'org', :'exercise', 'Blue') returning id as team \gset
insert into public.exercise_team_members (org_id, team_id, user_id) values (:'org', :'team', tests.user_id('pupil@a.test'));
insert into public.files (org_id, object_path, name, size_bytes, declared_mime, status, uploaded_by)
  values (:'org', :'org' || '/2026/12/07/' || gen_random_uuid() || '-sheet.txt', 'sheet.txt', 10, 'text/plain', 'clean', :'maker')
  returning id as file \gset
insert into public.file_versions (org_id, file_id, version, object_path, size_bytes, sha256)
  values (:'org', :'file', 1, 'v1', 10, encode(sha256('v1'), 'hex'));
insert into public.file_shares (org_id, file_id, grantee_role, access) values (:'org', :'file', 'student', 'read');
insert into public.file_shares (org_id, file_id, grantee_user_id, access) values (:'org', :'file', :'maker', 'write');
insert into public.notification_templates (org_id, type, subject, body) values (:'org', 'file.ready', 'Ready', 'It is ready.');
update public.organizations set name = 'Maker School' where id = :'org';
-- still in use when the maker goes: a key and an open invitation
insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes)
  values (:'org', 'live', 'sk_ijklmnop', sha256('live key'), '{events.write}') returning id as live_key \gset
insert into public.invitations (org_id, email, role, token_hash, expires_at)
  values (:'org', 'open@a.test', 'teacher', sha256('open invitation'), now() + interval '1 day') returning id as open_invitation \gset
-- made by the maker, last edited by the keeper
insert into public.exercises (org_id, title) values (:'org', 'Decimals') returning id as edited \gset
select set_config('request.jwt.claims', json_build_object('sub', tests.user_id('keeper@a.test'), 'role', 'authenticated')::text, true);
update public.exercises set title = 'Decimals, revised' where id = :'edited';

-- Every stamp naming the maker, in every table that has one (found from the catalog, so a new
-- table is counted too).
create function pg_temp.stamps_naming(who uuid) returns bigint language plpgsql as $$
declare
  fk record;
  n bigint := 0;
  found bigint;
begin
  for fk in
    select c.conrelid::regclass as tbl, a.attname as col
    from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.confrelid = 'auth.users'::regclass and c.confdeltype = 'n' and c.conparentid = 0
  loop
    execute format('select count(*) from %s where %I = $1', fk.tbl, fk.col) into found using who;
    n := n + found;
  end loop;
  return n;
end $$;

select cmp_ok(pg_temp.stamps_naming(:'maker'), '>=', 28::bigint, 'the maker is named by the stamps of every kind of row');

-- A stamp is not cleared while its user exists: not by the service, not by a member.
reset role;
select set_config('request.jwt.claims', '', true);
update public.exercises set created_by = null where id = :'exercise';
select is((select created_by from public.exercises where id = :'exercise'), :'maker'::uuid, 'the service cannot clear a creator stamp');
select tests.authenticate_as('keeper@a.test');
update public.member_permissions set created_by = null where org_id = :'org';
reset role;
select is((select created_by from public.member_permissions where org_id = :'org'), :'maker'::uuid,
  'an owner cannot clear an override''s creator');
select set_config('request.jwt.claims', '', true);

-- The delete, as the auth server makes it.
select lives_ok(format($sql$do $x$ begin
  set local role supabase_auth_admin;
  delete from auth.users where id = %L;
  reset role;
end $x$ $sql$, :'maker'), 'a user who made rows of every kind can be deleted');
select is(pg_temp.stamps_naming(:'maker'), 0::bigint, 'no stamp names the deleted user');
select is((select count(*)::int from public.organizations where id = :'org' and created_by is null), 1, 'the school stays');
select is((select count(*)::int from public.exercises where id = :'exercise' and created_by is null and updated_by is null), 1,
  'the exercise stays, its stamps cleared');
select is((select count(*)::int from public.exercise_team_members where org_id = :'org'), 1, 'the team keeps its member');
select is((select count(*)::int from public.files where id = :'file' and uploaded_by is null), 1, 'the file stays, its uploader cleared');
select is((select count(*)::int from public.file_versions where file_id = :'file' and created_by is null), 1, 'its version stays');
select is((select count(*)::int from public.file_shares where file_id = :'file'), 1, 'the share given to the deleted user goes, the role''s stays');
select is((select count(*)::int from public.api_keys where org_id = :'org' and name = 'probe' and revoked_by is null and revoked_at is not null), 1,
  'a key they revoked stays revoked');
select is((select count(*)::int from public.invitations where org_id = :'org' and accepted_at is not null and accepted_by is null), 1,
  'an invitation they accepted stays accepted');
select is((select count(*)::int from public.member_permissions where org_id = :'org' and created_by is null), 1,
  'an override they made stays');
select is((select count(*)::int from public.api_keys k where k.id = :'live_key' and k.revoked_at is not null and k.revoked_by is null), 1,
  'a key they made is revoked with them');
select is((select count(*)::int from public.invitations i where i.id = :'open_invitation' and i.revoked_at is not null), 1,
  'an invitation they sent and nobody accepted is revoked with them');
select is((select updated_by from public.exercises where id = :'edited'), tests.user_id('keeper@a.test'),
  'a row they made but someone else last edited still names that editor');

select * from finish();
rollback;
