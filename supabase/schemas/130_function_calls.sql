-- Calling Edge Functions from SQL (triggers, sweeps, pg_cron), the way Supabase recommends for
-- pg_net: the function's address and the key to call it with come from Vault, secrets
-- `project_url` (https://<ref>.supabase.co) and `service_role_key`. The local stack sets both at
-- start; on a hosted project, create them once (docs/files.md). The request goes out after commit.

create function app.vault_secret(secret_name text) returns text
language sql stable security definer set search_path = ''
as $$ select decrypted_secret from vault.decrypted_secrets where name = secret_name order by created_at desc limit 1 $$;
revoke all on function app.vault_secret(text) from public;

-- Posts the payload to /functions/v1/<name>; false (and a warning) when Vault lacks the address or
-- key, in which case the callers' sweeps send it again once they exist. A payload's `org_id` goes
-- out as the `X-Org-Id` header too: every tenant's calls reach one host, and the local net worker
-- (pg_net's stand-in) lets each organization hold only its share of that host's requests, so one
-- tenant's slow calls do not hold up the others'.
create function app.call_function(function_name text, payload jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  base text := app.vault_secret('project_url');
  key text := app.vault_secret('service_role_key');
begin
  if base is null or key is null then
    raise warning 'vault secrets project_url and service_role_key are needed to call %', function_name;
    return false;
  end if;
  perform net.http_post(url := rtrim(base, '/') || '/functions/v1/' || function_name, body := payload,
                        headers := jsonb_strip_nulls(jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || key,
                                                                        'X-Org-Id', payload ->> 'org_id')),
                        timeout_milliseconds := 120000);
  return true;
end
$$;
revoke all on function app.call_function(text, jsonb) from public;
