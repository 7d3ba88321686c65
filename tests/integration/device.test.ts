// The reference device (examples/device) against the running stack, as a machine runs it: its own
// Node process holding only the project's publishable key and an organization's API key. It sends
// events, uploads a file, hears the scan's verdict over MQTT and reads the file's record; a file
// the scanner finds infected reaches it as file.rejected.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey } from "../helpers/machines.ts";
import { addMember, createOrg } from "../helpers/organizations.ts";
import { adminSql, API_URL, HOST, PORTS, secrets } from "../helpers/stack.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const admin = adminSql();
let org: string, key: { id: string; key: string };

beforeAll(async () => {
  org = await createOrg(admin, "Scanner Station", "basic");
  const owner = await addMember(admin, org, "owner");
  key = await createKey(admin, org, owner.id, ["org.read", "events.write", "files.write", "files.read"], {
    name: "scanner station 1",
    mqttTopics: ["events"],
  });
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await admin.end();
});

async function device(...args: string[]) {
  const { stdout } = await run(process.execPath, [path.join(ROOT, "examples/device/src/device.ts"), ...args], {
    cwd: path.join(ROOT, "examples/device"),
    timeout: 60_000,
    env: {
      PATH: process.env.PATH,
      SAAS_URL: API_URL,
      SAAS_PUBLISHABLE_KEY: secrets().publishableKey,
      SAAS_API_KEY: key.key,
      SAAS_MQTT_URL: `mqtt://${HOST}:${PORTS.mqtt}`,
      SAAS_SCAN_TIMEOUT_MS: "30000",
    },
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

describe("the reference device", () => {
  it("sends events, uploads a worksheet, hears it is clean over MQTT and reads the file", async () => {
    const out = await device();
    expect(out).toMatchObject({
      api_key_id: key.id,
      org_id: org,
      events_accepted: 2,
      verdict: { via: "mqtt", type: "file.ready", status: "clean" },
      file: { name: "worksheet.txt", status: "clean", mime_type: "text/plain", detected_mime: "text/plain" },
    });
    expect(out.file.sha256).toMatch(/^[0-9a-f]{64}$/);
    const events = await admin`select event_type, user_id from public.analytics_events where org_id = ${org} order by event_type`;
    expect(events).toEqual([
      { event_type: "exercise.submitted", user_id: null },
      { event_type: "lesson.started", user_id: null },
    ]);
  }, 60_000);

  it("hears an infected upload's verdict too", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "device-"));
    const file = path.join(dir, "infected.txt");
    fs.writeFileSync(file, EICAR);
    try {
      const out = await device(file);
      expect(out).toMatchObject({
        verdict: { via: "mqtt", type: "file.rejected", status: "infected" },
        file: { name: "infected.txt", status: "infected" },
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
