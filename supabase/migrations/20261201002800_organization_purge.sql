-- Deleting an organization for good leaves none of its data (issue 16, item 7). Before, its
-- files, thumbnails and export archives stayed in storage (tenant.delete now removes every object
-- under the organization's folder in each bucket, through the Storage API, before the rows), and
-- the audit log kept full copies of every deleted row, for organizations flagged COPPA/FERPA too.
-- app.purge_organization deletes the organization and then strips the row contents (old_values,
-- new_values) from all of its audit entries: who, what, when and where stay; what the rows held
-- goes. It runs only once the tier's retention after the soft delete has passed (tenant.delete
-- checks, and so does this function).
-- The audit log stays append-only: the only change allowed is this redaction, for entries of an
-- organization that no longer exists, inside this function (a transaction-local setting names it;
-- no API role holds UPDATE on the log, so none can reach the exception).

create or replace function app.audit_refuse_change() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
     and old.org_id is not null and current_setting('app.audit_redacting', true) = old.org_id::text
     and not exists (select 1 from public.organizations where id = old.org_id)
     and new.old_values is null and new.new_values is null
     and (to_jsonb(new) - '{old_values,new_values}'::text[]) = (to_jsonb(old) - '{old_values,new_values}'::text[]) then
    return new;
  end if;
  raise exception 'the audit log is append-only' using errcode = 'TN090';
end
$$;

create function app.purge_organization(org uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  due boolean;
begin
  select o.deleted_at < now() - make_interval(days => t.retention_days) into due
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = org for update of o;
  if due is null then
    return false;                         -- already gone
  elsif not due then
    raise exception 'organization % is not past its retention period', org using errcode = 'TN041';
  end if;
  delete from public.organizations where id = org;
  perform set_config('app.audit_redacting', org::text, true);
  update audit.log set old_values = null, new_values = null
  where org_id = org and (old_values is not null or new_values is not null);
  perform set_config('app.audit_redacting', '', true);
  return true;
end
$$;
revoke all on function app.purge_organization(uuid) from public;
grant execute on function app.purge_organization(uuid) to service_role;
