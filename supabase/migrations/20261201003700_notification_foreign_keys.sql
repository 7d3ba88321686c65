-- The foreign keys a 10,000-recipient send checks 10,000 times each (issue 19, item 1).
--
-- 1. A delivery names its notification by primary key alone. The key was (org_id, notification_id)
--    -> notifications (org_id, id). Postgres checks it with one query per inserted delivery,
--    `... where org_id = $1 and id = $2`, planned once per connection. For an organization the
--    statistics do not know yet (every new one, and any after a bulk import), the planner expects
--    one row for that org_id whichever index it takes, and takes the smallest index that starts
--    with org_id: notifications_org_idx (org_id, created_at). Each check then reads every
--    notification of the organization to find one id. Measured with `npm run bench:notify`: the
--    check took 3.3 s for 10,000 deliveries instead of ~50 ms in about half the runs, and EXPLAIN
--    of its query chose notifications_org_idx in every custom plan tried. By id there is nothing
--    to choose. What the composite key also said, that a delivery's organization is its
--    notification's, is kept by the only writers: app.notify and notification-dispatch copy org_id
--    from the notification, and no API role may insert or change deliveries (grants: select only).
alter table public.notification_deliveries drop constraint notification_deliveries_org_id_notification_id_fkey;
alter table public.notification_deliveries
  add constraint notification_deliveries_notification_id_fkey
  foreign key (notification_id) references public.notifications (id) on delete cascade;

-- 2. A notification's organization is checked once, through its recipient's membership
--    ((org_id, recipient_id) -> organization_members, whose org_id references organizations and
--    cascades), not a second time on its own: inserting 10,000 notifications took 430-530 ms with
--    both checks and 340-370 ms without the redundant one (EXPLAIN ANALYZE, same session).
alter table public.notifications drop constraint notifications_org_id_fkey;
