-- Demo data for local use, loaded once when the local stack creates its database.
-- Users are created the way GoTrue stores them (auth.users); tenancy data comes with its migration.
insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
values
  ('00000000-0000-4000-a000-000000000001', 'authenticated', 'authenticated', 'owner@demo.school', now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Olivia Owner"}'),
  ('00000000-0000-4000-a000-000000000002', 'authenticated', 'authenticated', 'teacher@demo.school', now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Theo Teacher"}'),
  ('00000000-0000-4000-a000-000000000003', 'authenticated', 'authenticated', 'student@demo.school', now(), '{"provider":"email","providers":["email"]}', '{"full_name":"Sam Student"}')
on conflict (id) do nothing;
