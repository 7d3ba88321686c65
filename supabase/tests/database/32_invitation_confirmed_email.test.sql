-- Issue 16, item 14: an invitation is accepted only from a confirmed e-mail address.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(2);

select tests.create_user('owner@ic.test');
create temp table o as select tests.create_org('owner@ic.test', 'invite-confirmed') a;
grant select on o to authenticated;
-- someone signed up as the invited address, never confirmed
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
values (gen_random_uuid(), 'authenticated', 'authenticated', 'invited@ic.test', '{}', '{}');
create temp table t as select null::text token;
grant all on t to authenticated;
select tests.authenticate_as('owner@ic.test');
update t set token = (select token from public.create_invitation((select a from o), 'invited@ic.test', 'teacher'));
reset role;

select tests.authenticate_as('invited@ic.test');
select throws_ok($$ select public.accept_invitation((select token from t)) $$, 'TN018', null, 'an unconfirmed address cannot accept');
reset role;
update auth.users set email_confirmed_at = now() where email = 'invited@ic.test';
select tests.authenticate_as('invited@ic.test');
select is((select role::text from public.accept_invitation((select token from t))), 'teacher', 'once confirmed, it can');
reset role;

select * from finish();
rollback;
