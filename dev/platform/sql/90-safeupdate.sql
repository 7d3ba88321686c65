-- Hosted Supabase loads pg-safeupdate in every session of `authenticator`, the role PostgREST logs
-- in as: a PATCH or DELETE through the Data API without a filter fails with 21000 "UPDATE requires
-- a WHERE clause" instead of changing every row RLS lets the caller touch. Other roles (the
-- service's direct connections, pg_cron, GoTrue, Storage) are not affected. The stack builds its
-- own safeupdate (dev/platform/safeupdate) onto the cluster's library path at each Postgres start.
-- A Postgres started before that cannot find it, and a role setting naming a library that does not
-- load refuses every PostgREST connection: then the setting is left off until a full restart.
do $$
begin
  begin
    load 'safeupdate';
  exception when others then
    raise warning 'safeupdate does not load in this Postgres (%): unfiltered writes through PostgREST are not refused until it is restarted (npm stop && npm start)', sqlerrm;
    alter role authenticator reset session_preload_libraries;
    return;
  end;
  alter role authenticator set session_preload_libraries = 'safeupdate';
end
$$;
