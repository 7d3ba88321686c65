-- Storage path helpers and pg_net/vault signatures, as hosted Supabase defines them.
begin;
create extension if not exists pgtap with schema extensions;
select plan(13);

select is(storage.foldername('org/2026/11/file.txt'), array['org', '2026', '11'], 'storage.foldername() lists the folders');
select is(storage.filename('org/2026/11/file.txt'), 'file.txt', 'storage.filename() is the last part');
select is(storage.extension('org/2026/11/archive.tar.gz'), 'gz', 'storage.extension() is after the last dot');
select is(storage.foldername('file.txt'), '{}'::text[], 'a top-level object has no folders');

select has_function('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'], 'net.http_post has pg_net''s signature');
select has_function('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer'], 'net.http_get has pg_net''s signature');
select has_function('vault', 'create_secret', array['text', 'text', 'text', 'uuid'], 'vault.create_secret has Vault''s signature');
select has_function('supabase_functions', 'http_request', '{}'::text[], 'supabase_functions.http_request exists');

set local role service_role;
select isnt(net.http_post('http://127.0.0.1:9/x', '{"a":1}'::jsonb), null, 'net.http_post returns a request id');
select throws_ok($$ select net.http_post('file:///etc/passwd') $$, '22023', null, 'net refuses non-http urls');
reset role;

select lives_ok($$ select vault.create_secret('s3cr3t', 'pgtap_probe') $$, 'vault.create_secret stores a secret');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'pgtap_probe'), 's3cr3t', 'a vault secret decrypts to what was stored');
select isnt((select secret from vault.secrets where name = 'pgtap_probe'), 's3cr3t', 'the stored secret is not plain text');

select * from finish();
rollback;
