-- File processing calls its function through app.call_function (added with notifications), the
-- one place that builds a function call from the Vault secrets; same payload, same contract.
create or replace function app.request_file_processing(object_record jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  return app.call_function('file-processing',
    jsonb_build_object('type', 'INSERT', 'table', 'objects', 'schema', 'storage', 'record', object_record, 'old_record', null));
end
$$;
