// The per-recipient notification limit belongs to one organization: a member of two organizations
// who is sent past the limit by one of them still gets the other's notifications at once. End to
// end: senders call send_notification through the gateway with their own tokens (supabase-js), the
// stack's notification-dispatch delivers, and the deliveries' rows say what it did.
import crypto from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { PER_RECIPIENT_PER_MINUTE } from "../../supabase/functions/notification-dispatch/dispatch.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
let orgA: string, orgB: string, shared: string;
let senderA: SupabaseClient<Database>, senderB: SupabaseClient<Database>;

async function clientOf(userId: string) {
  const { token } = await tokenFor(admin, userId);
  return createClient<Database>(API_URL, secrets().anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

beforeAll(async () => {
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Limits A', ${`limits-a-${run}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Limits B', ${`limits-b-${run}`}) returning id`;
  const [a, b, s] = await Promise.all([createUser(admin), createUser(admin), createUser(admin)]);
  shared = s.id;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${a.id}, 'teacher'), (${orgB}, ${b.id}, 'teacher'), (${orgA}, ${shared}, 'student'), (${orgB}, ${shared}, 'student')`;
  // MQTT only: the limit is the dispatcher's, and e-mail is not what this is about
  await admin`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
              values (${orgA}, ${shared}, '*', 'email', false), (${orgB}, ${shared}, '*', 'email', false)`;
  [senderA, senderB] = await Promise.all([clientOf(a.id), clientOf(b.id)]);
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

async function send(client: SupabaseClient<Database>, org: string, title: string) {
  const { data, error } = await client.rpc("send_notification", {
    org_id: org,
    type: "announcement.posted",
    title,
    recipients: { user_ids: [shared] },
  });
  expect(error).toBeNull();
  return data![0].batch_id;
}
/** The shared member's MQTT delivery of a batch, once the dispatcher has decided it. */
const decided = (batch: string) =>
  waitUntil(
    `batch ${batch} to be dispatched`,
    async () => {
      const [d] = await admin<{ status: string; last_error: string | null }[]>`
      select d.status, d.last_error from public.notification_deliveries d
      where d.batch_id = ${batch} and d.channel = 'mqtt'`;
      return d && (d.status !== "pending" || d.last_error) ? d : null;
    },
    20_000,
    100,
  );

it("one organization sending a shared member past their limit does not hold back another's", async () => {
  // everything below happens within one of the limiter's one-minute windows
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 20_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
  const window = Math.floor(Date.now() / 60_000);
  const flood = [];
  for (let i = 0; i <= PER_RECIPIENT_PER_MINUTE; i++) flood.push(await send(senderA, orgA, `Flood ${i}`));
  const outcomes = await Promise.all(flood.map(decided));
  expect(outcomes.filter((d) => d.status === "sent")).toHaveLength(PER_RECIPIENT_PER_MINUTE);
  expect(outcomes.filter((d) => d.status === "pending").map((d) => d.last_error)).toEqual(["rate_limited"]);

  const fromB = await decided(await send(senderB, orgB, "From B"));
  expect(fromB).toEqual({ status: "sent", last_error: null });
  expect(Math.floor(Date.now() / 60_000), "all of it within one window").toBe(window);
}, 90_000);
