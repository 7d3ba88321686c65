-- Supabase Vault's API (vault.create_secret, vault.update_secret, vault.decrypted_secrets).
-- Hosted Vault encrypts with a key held outside the database; this stand-in encrypts with
-- pgcrypto under a random key that only the vault owner can read. Same names and signatures.
create schema if not exists vault;
revoke all on schema vault from public;
grant usage on schema vault to postgres, service_role;

create table if not exists vault._key (
  singleton boolean primary key default true check (singleton),
  key text not null default encode(extensions.gen_random_bytes(32), 'hex')
);
insert into vault._key default values on conflict do nothing;
revoke all on vault._key from public, anon, authenticated, service_role;

create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index if not exists secrets_name_idx on vault.secrets (name) where name is not null;
revoke all on vault.secrets from public, anon, authenticated;
grant select, delete on vault.secrets to postgres, service_role;

create or replace function vault._encrypt(plain text) returns text
language sql volatile security definer set search_path = ''
as $$ select encode(extensions.pgp_sym_encrypt(plain, (select key from vault._key)), 'base64') $$;

create or replace function vault._decrypt(cipher text) returns text
language sql stable security definer set search_path = ''
as $$ select extensions.pgp_sym_decrypt(decode(cipher, 'base64'), (select key from vault._key)) $$;
revoke all on function vault._encrypt(text), vault._decrypt(text) from public;
-- A view checks function privileges as its caller: readers of decrypted_secrets need _decrypt.
grant execute on function vault._decrypt(text) to postgres, service_role;

create or replace view vault.decrypted_secrets as
  select s.id, s.name, s.description, s.secret, vault._decrypt(s.secret) as decrypted_secret,
         s.key_id, s.nonce, s.created_at, s.updated_at
  from vault.secrets s;
revoke all on vault.decrypted_secrets from public, anon, authenticated;
grant select on vault.decrypted_secrets to postgres, service_role;

create or replace function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default '',
  new_key_id uuid default null
) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
  rec_id uuid;
begin
  insert into vault.secrets (secret, name, description, key_id)
  values (vault._encrypt(new_secret), new_name, coalesce(new_description, ''), new_key_id)
  returning id into rec_id;
  return rec_id;
end
$$;

create or replace function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null,
  new_key_id uuid default null
) returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  update vault.secrets s set
    secret = coalesce(vault._encrypt(new_secret), s.secret),
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    key_id = coalesce(new_key_id, s.key_id),
    updated_at = now()
  where s.id = secret_id;
end
$$;
revoke all on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid) from public;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres, service_role;
