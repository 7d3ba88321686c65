-- Demo data for local use, loaded once when the local stack creates its database (hosted: `supabase
-- db reset` loads it on a branch). Users are stored the way GoTrue stores them, password
-- "demo-password" (bcrypt); sign in with supabase-js `auth.signInWithPassword` against the stack.
insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
values
  ('00000000-0000-4000-a000-000000000001', 'authenticated', 'authenticated', 'owner@demo.school', extensions.crypt('demo-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Olivia Owner"}'),
  ('00000000-0000-4000-a000-000000000002', 'authenticated', 'authenticated', 'teacher@demo.school', extensions.crypt('demo-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Theo Teacher"}'),
  ('00000000-0000-4000-a000-000000000003', 'authenticated', 'authenticated', 'student@demo.school', extensions.crypt('demo-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Sam Student"}'),
  ('00000000-0000-4000-a000-000000000004', 'authenticated', 'authenticated', 'head@other.academy', extensions.crypt('demo-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Harper Head"}')
on conflict (id) do nothing;

-- Two organizations, so isolation can be tried by hand.
insert into public.organizations (id, name, slug, tier, ferpa, data_region)
values ('00000000-0000-4000-b000-000000000001', 'Demo School', 'demo-school', 'education', true, 'us'),
       ('00000000-0000-4000-b000-000000000002', 'Other Academy', 'other-academy', 'basic', false, 'eu')
on conflict (id) do nothing;
insert into public.organization_members (org_id, user_id, role)
values ('00000000-0000-4000-b000-000000000001', '00000000-0000-4000-a000-000000000001', 'owner'),
       ('00000000-0000-4000-b000-000000000001', '00000000-0000-4000-a000-000000000002', 'teacher'),
       ('00000000-0000-4000-b000-000000000001', '00000000-0000-4000-a000-000000000003', 'student'),
       ('00000000-0000-4000-b000-000000000002', '00000000-0000-4000-a000-000000000004', 'owner')
on conflict do nothing;
