-- Written by hand (`npm run db:diff` generated a drop of the constraint on each partition, which
-- Postgres refuses for an inherited constraint): the stored numbers' bound as one jsonpath test,
-- and the partials trigger without a function call per property.
alter table public.analytics_events drop constraint analytics_events_numbers_bounded;
alter table public.analytics_events add constraint analytics_events_numbers_bounded
  check (not (properties @? 'strict $.* ? (@.type() == "number" && (@ > 1e12 || @ < -1e12))')) not valid;

create or replace function app.record_analytics_partials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1, s2, s3, s4)
  select n.org_id, n.event_type, date_trunc('hour', n.occurred_at, 'UTC'), n.user_id, count(*),
         sum(case when jsonb_typeof(p.v1) = 'number' then p.v1::numeric end), sum(case when jsonb_typeof(p.v2) = 'number' then p.v2::numeric end),
         sum(case when jsonb_typeof(p.v3) = 'number' then p.v3::numeric end), sum(case when jsonb_typeof(p.v4) = 'number' then p.v4::numeric end)
  from new_rows n
  join public.analytics_event_types t on t.key = n.event_type
  cross join lateral (select n.properties -> t.numeric_properties[1] as v1, n.properties -> t.numeric_properties[2] as v2,
                             n.properties -> t.numeric_properties[3] as v3, n.properties -> t.numeric_properties[4] as v4) p
  group by 1, 2, 3, 4;
  return null;
end
$$;

drop function app.analytics_properties_bounded(jsonb);
drop function app.analytics_number(jsonb);
