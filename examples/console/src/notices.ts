// What a notification says to the person reading it. Announcements are people's own words and are
// shown as sent; the system's notifications are worded here from their type and data, so a row made
// before its producer wrote sentences (a scanner's signature name, a metric key, a job's stack
// message) still reads as one.
import { bytes } from "./ui.ts";

export interface Notice {
  type: string;
  title: string;
  body: string | null;
  data: unknown;
}

type Data = Record<string, unknown>;
const num = (v: unknown) => (typeof v === "number" ? v : Number(v ?? 0));
const day = (v: unknown) =>
  typeof v === "string" && /^\d{4}-\d\d-\d\d$/.test(v)
    ? new Date(`${v}T12:00:00Z`).toLocaleDateString(undefined, { dateStyle: "long" })
    : "";

/** A file the checks refused: why, in words, from the reason's code (never the checker's text). */
export const REFUSALS: Record<string, string> = {
  infected: "It looks like it carries a virus, so it was not kept. Check the device it came from with a virus scanner.",
  size_mismatch: "Its size differs from what was announced when the upload started. Upload it again.",
  type_mismatch:
    "Its content does not match its type (for example a picture named .pdf). Save it in the right format and upload it again.",
  upload_never_arrived: "The upload did not finish. Upload it again.",
};
const COULD_NOT_CHECK = "It could not be checked. Upload it again.";

/** The code of a refusal from what the database holds (the reason's first word, or the status). */
export function refusalCode(status: string, reason: string | null | undefined) {
  if (status === "infected") return "infected";
  return reason?.match(/^[a-z_]+/)?.[0] ?? status;
}

const METRIC: Record<string, [string, (n: number) => string]> = {
  members: ["Members", (n) => n.toLocaleString()],
  storage_bytes: ["Storage", (n) => bytes(n)],
  events: ["Analytics events", (n) => n.toLocaleString()],
  api_calls: ["API calls", (n) => n.toLocaleString()],
};

export function readNotice(n: Notice): { title: string; message: string } {
  const d = (n.data && typeof n.data === "object" ? n.data : {}) as Data;
  switch (n.type) {
    case "file.ready":
      return { title: n.title, message: "It passed the checks; it is in Files." };
    case "file.rejected": {
      const code = typeof d.reason === "string" ? d.reason : refusalCode(String(d.status ?? ""), n.body);
      return { title: n.title, message: REFUSALS[code] ?? COULD_NOT_CHECK };
    }
    case "job.failed":
      return {
        title: "A background job failed",
        message: "Its last attempt failed and it will not be tried again on its own. Open Jobs to retry it.",
      };
    case "quota.warning":
      return {
        title: "Storage is over 80 % of the plan",
        message: `${bytes(num(d.used_bytes))} of ${
          bytes(num(d.limit_bytes))
        } used. Delete files you no longer need, or upgrade the plan.`,
      };
    case "usage.warning":
    case "usage.limit": {
      const [label, amount] = METRIC[String(d.metric)] ?? ["Usage", (x: number) => x.toLocaleString()];
      const used = num(d.used);
      const limit = num(d.limit);
      const percent = limit ? Math.floor((100 * used) / limit) : 0;
      return {
        title: `${label} at ${percent} % of the plan`,
        message: `${amount(used)} of ${amount(limit)} used${d.day ? ` on ${day(d.day)}` : ""}.`,
      };
    }
    case "invitation.sent":
      return { title: n.title, message: "It is listed under Organizations until it is accepted." };
    default:
      return { title: n.title, message: n.body ?? "" };
  }
}
