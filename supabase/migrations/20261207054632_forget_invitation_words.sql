-- Data only (docs/database.md: backfills are written by hand): member-invite now keeps an
-- invitation's words (invited_to_name, invited_as; invited_to on accounts an invitation made) in
-- the person's user metadata only while Auth sends that invitation's mail. Words an earlier
-- invitation left behind would still head every later magic link to that person, so they go.
update auth.users
set raw_user_meta_data = raw_user_meta_data - array['invited_to_name', 'invited_as', 'invited_to']
where raw_user_meta_data ?| array['invited_to_name', 'invited_as', 'invited_to'];
