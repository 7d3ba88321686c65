-- Quiet hours per member (deliveries wait until they end, unless urgent: deferred, not dropped) and
-- the notification rate limit per tier that notification-dispatch enforces with Redis.

create table public.notification_settings (
  org_id uuid not null,
  user_id uuid not null,
  quiet_start time,
  quiet_end time,
  time_zone text not null default 'UTC' check (length(time_zone) <= 64),
  updated_at timestamptz not null default now(),
  primary key (org_id, user_id),
  check ((quiet_start is null) = (quiet_end is null) and (quiet_start is null or quiet_start <> quiet_end)),
  foreign key (org_id, user_id) references public.organization_members (org_id, user_id) on delete cascade
);
select app.enable_audit('public.notification_settings', 'org_id', '{user_id}');

-- A time zone Postgres does not know is refused when it is set, not when a notification is due.
create function app.check_time_zone() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform now() at time zone new.time_zone;
  return new;
exception when invalid_parameter_value then
  raise exception 'unknown time zone %', new.time_zone using errcode = '22023';
end
$$;
create trigger check_time_zone before insert or update of time_zone on public.notification_settings
  for each row execute function app.check_time_zone();

alter table public.notification_settings enable row level security;
revoke all on public.notification_settings from anon, authenticated;
grant select, insert (org_id, user_id, quiet_start, quiet_end, time_zone), update (quiet_start, quiet_end, time_zone), delete
  on public.notification_settings to authenticated;
create policy "users read their own notification settings" on public.notification_settings
  for select to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users make their own notification settings" on public.notification_settings
  for insert to authenticated with check (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users change their own notification settings" on public.notification_settings
  for update to authenticated
  using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())))
  with check (user_id = (select auth.uid()));
create policy "users remove their own notification settings" on public.notification_settings
  for delete to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));

-- When a member's quiet hours end, if they are in them now (they may run past midnight); null if not.
create function app.quiet_until(org uuid, member uuid, at timestamptz default now()) returns timestamptz
language sql stable set search_path = ''
as $$
  select case
    when s.quiet_start < s.quiet_end and local_time >= s.quiet_start and local_time < s.quiet_end
      then ((local_at::date + s.quiet_end) at time zone s.time_zone)
    when s.quiet_start > s.quiet_end and local_time >= s.quiet_start
      then (((local_at::date + 1) + s.quiet_end) at time zone s.time_zone)
    when s.quiet_start > s.quiet_end and local_time < s.quiet_end
      then ((local_at::date + s.quiet_end) at time zone s.time_zone)
  end
  from public.notification_settings s,
       lateral (select at at time zone s.time_zone as local_at) l,
       lateral (select l.local_at::time as local_time) t
  where s.org_id = org and s.user_id = member and s.quiet_start is not null
$$;
revoke all on function app.quiet_until(uuid, uuid, timestamptz) from public;

-- Deliveries made for a member in quiet hours wait until the hours end (urgent ones do not).
create function app.defer_for_quiet_hours() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  n public.notifications;
  until timestamptz;
begin
  select * into n from public.notifications where id = new.notification_id;
  if n.priority <> 'urgent' and new.status = 'pending' then
    until := app.quiet_until(n.org_id, n.recipient_id);
    if until is not null then
      new.next_attempt_at := until;
    end if;
  end if;
  return new;
end
$$;
revoke all on function app.defer_for_quiet_hours() from public;
create trigger defer_for_quiet_hours before insert on public.notification_deliveries
  for each row execute function app.defer_for_quiet_hours();

-- Notifications per minute an organization may receive on each channel, by tier.
alter table public.subscription_tiers add column notifications_per_minute integer not null default 600 check (notifications_per_minute > 0);
update public.subscription_tiers set notifications_per_minute = case tier
  when 'free' then 600 when 'basic' then 3000 when 'professional' then 12000 when 'enterprise' then 60000 when 'education' then 60000 end;
