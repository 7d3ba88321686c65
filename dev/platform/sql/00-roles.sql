-- Roles hosted Supabase provides. Created only where missing, with hosted attributes:
-- anon/authenticated/service_role are NOLOGIN and reached through `set role` (PostgREST) or
-- membership of authenticator; service_role alone bypasses RLS.
do $$
declare
  r record;
begin
  for r in select * from (values
      ('anon',                     'nologin noinherit'),
      ('authenticated',            'nologin noinherit'),
      ('service_role',             'nologin noinherit bypassrls'),
      ('authenticator',            'login noinherit'),
      ('supabase_auth_admin',      'login noinherit createrole'),
      ('supabase_storage_admin',   'login noinherit createrole'),
      ('supabase_functions_admin', 'login noinherit createrole')
    ) as t(name, attrs)
  loop
    if not exists (select 1 from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attrs);
    end if;
  end loop;
end
$$;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
-- GoTrue runs auth hooks as supabase_auth_admin; the storage API acts for users like PostgREST.
grant anon, authenticated, service_role to supabase_storage_admin;

-- The exposed schema: every role may use it; tables are granted by default and RLS decides,
-- exactly as on hosted Supabase (this is why RLS on every table matters).
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;

-- Requests never wait forever on a lock or a runaway query (hosted sets these per role).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
