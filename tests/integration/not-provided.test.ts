// Hosted paths the local stack does not serve answer 501 not_provided_locally naming the feature
// (with CORS, so a browser app reads the reason), never a bare 404; `npm run status` lists what
// was asked for; config.toml's switches for what the stack does not run are off or warned about.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { paths } from "../../dev/stack/config.ts";
import { ignoredSwitches, NOT_PROVIDED } from "../../dev/platform/not-provided.ts";
import { API_URL, secrets } from "../helpers/stack.ts";

const HOSTED_PATHS: [string, string, string][] = [
  ["GET", "/realtime/v1/websocket?vsn=1.0.0", "Realtime"],
  ["GET", "/storage/v1/render/image/public/files/a.png?width=100", "Storage image transformations"],
  ["GET", "/auth/v1/authorize?provider=google", "Auth with OAuth providers, SSO and SAML"],
  ["POST", "/graphql/v1", "GraphQL (pg_graphql)"],
  ["POST", "/auth/v1/factors", "Auth multi-factor"],
  ["GET", "/storage/v1/s3/files", "Storage S3 protocol"],
];

describe("hosted features the local stack does not run", () => {
  it("answer 501 not_provided_locally naming the feature, with CORS, and npm run status lists them", async () => {
    for (const [method, p, feature] of HOSTED_PATHS) {
      const res = await fetch(`${API_URL}${p}`, {
        method,
        headers: { apikey: secrets().publishableKey, origin: "http://localhost:5173" },
      });
      const body = await res.json();
      expect([p, res.status, body.error.code], p).toEqual([p, 501, "not_provided_locally"]);
      expect(body.error.message).toContain(feature);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
    }
    const status = spawnSync("bash", [path.join(paths.supabase, "..", "dev", "bin", "stack"), "status"], { encoding: "utf8" });
    for (const [, , feature] of HOSTED_PATHS) expect(status.stdout).toContain(`${feature}: `);
  });

  it("paths the stack serves are not caught by the table", async () => {
    const res = await fetch(`${API_URL}/auth/v1/settings`, { headers: { apikey: secrets().publishableKey } });
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const unknown = await fetch(`${API_URL}/no/such/thing`);
    expect(unknown.status).toBe(404);
    await unknown.body?.cancel();
  });

  it("config.toml turns on nothing the stack ignores, and a switch turned on is found", () => {
    const raw = parse(fs.readFileSync(path.join(paths.supabase, "config.toml"), "utf8")) as Record<string, unknown>;
    expect(ignoredSwitches(raw).map((f) => f.feature)).toEqual([]);
    const asking = structuredClone(raw) as Record<string, Record<string, unknown>>;
    asking.realtime = { enabled: true };
    (asking.storage.s3_protocol as Record<string, unknown>).enabled = true;
    expect(ignoredSwitches(asking).map((f) => f.feature)).toEqual(["Realtime", "Storage S3 protocol"]);
    expect(NOT_PROVIDED.every((f) => f.instead.length > 0)).toBe(true);
  });
});
