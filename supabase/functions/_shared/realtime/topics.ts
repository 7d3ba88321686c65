// The MQTT topic tree of docs/architecture.md, built from typed ids so no caller assembles a topic by
// hand (a stray wildcard or slash in an id would address someone else's topic). Which client may
// use which topic is decided by the broker, from Postgres (schema mqtt).
import { z } from "zod";

const Id = z.uuid();
const Role = z.enum(["owner", "admin", "teacher", "student"]);
const FeedType = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "feed types are 1-64 letters, digits, _ . -");

export type TopicKind = "health" | "events" | "notifications" | "control" | "feed";

export const topics = {
  health: () => "system/health",
  events: (orgId: string) => `org/${Id.parse(orgId)}/events`,
  notifications: (orgId: string, userId: string) => `org/${Id.parse(orgId)}/users/${Id.parse(userId)}/notifications`,
  /** A role's audience topic: notifications of types with audience delivery, one message for all of the role's members. */
  roleNotifications: (orgId: string, role: string) => `org/${Id.parse(orgId)}/roles/${Role.parse(role)}/notifications`,
  control: (orgId: string, exerciseId: string) => `org/${Id.parse(orgId)}/exercise/${Id.parse(exerciseId)}/control`,
  feed: (orgId: string, exerciseId: string, teamId: string, feedType: string) =>
    `org/${Id.parse(orgId)}/exercise/${Id.parse(exerciseId)}/team/${Id.parse(teamId)}/feeds/${FeedType.parse(feedType)}`,
};

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const PATTERNS: [TopicKind, RegExp][] = [
  ["health", /^system\/health$/],
  ["events", new RegExp(`^org/(${UUID})/events$`)],
  ["notifications", new RegExp(`^org/(${UUID})/users/${UUID}/notifications$`)],
  ["notifications", new RegExp(`^org/(${UUID})/roles/(?:owner|admin|teacher|student)/notifications$`)],
  ["control", new RegExp(`^org/(${UUID})/exercise/${UUID}/control$`)],
  ["feed", new RegExp(`^org/(${UUID})/exercise/${UUID}/team/${UUID}/feeds/[A-Za-z0-9_.-]{1,64}$`)],
];

/** What a concrete topic is, and the organization it belongs to; null for anything else. */
export function classifyTopic(topic: string): { kind: TopicKind; orgId: string | null } | null {
  for (const [kind, re] of PATTERNS) {
    const m = re.exec(topic);
    if (m) return { kind, orgId: m[1] ?? null };
  }
  return null;
}

/**
 * Delivery guarantee per kind: what a person must see (notifications, control, events) at least
 * once; high-rate feeds and health beats at most once, where the next sample replaces a lost one.
 */
export const QOS: Record<TopicKind, 0 | 1> = { health: 0, events: 1, notifications: 1, control: 1, feed: 0 };
