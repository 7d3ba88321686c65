-- pg_cron, as hosted projects enable it (the cron schema; jobs run as the role that scheduled them).
create extension if not exists pg_cron;
grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;
