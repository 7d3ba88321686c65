// The new API keys (sb_publishable_…, sb_secret_…) beside the legacy JWT keys, through every
// surface a client reaches: the Data API, storage, auth, the functions (the service functions'
// own check included) and the broker's service login. A publishable key acts as anon, a secret
// key as the service; neither is a user's token, and a secret key from a browser is refused.
import { createClient } from "@supabase/supabase-js";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { orgWithMember } from "../helpers/organizations.ts";
import { adminSql, API_URL, HOST, PORTS, secrets } from "../helpers/stack.ts";

const admin = adminSql();
let org: string, member: string, memberToken: string, end: () => Promise<void>;
const BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
const client = (key: string, token?: string) =>
  createClient<Database>(API_URL, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });

beforeAll(async () => {
  ({ org, member, token: memberToken, end } = await orgWithMember(admin, "New keys"));
});
afterAll(async () => {
  await end?.();
  await admin.end();
});

describe("the new API keys", () => {
  it("are made by npm start in hosted's shape", () => {
    expect(secrets().publishableKey).toMatch(/^sb_publishable_[A-Za-z0-9_-]{32}$/);
    expect(secrets().secretKey).toMatch(/^sb_secret_[A-Za-z0-9_-]{32}$/);
  });

  it("Data API: the publishable key reads as anon, a user's token with it as that user, the secret key as the service", async () => {
    const anon = await client(secrets().publishableKey).from("organizations").select("id").eq("id", org);
    expect(anon.error?.code).toBe("42501"); // anon may read no tenant table
    const asMember = await client(secrets().publishableKey, memberToken).from("organizations").select("id").eq("id", org);
    expect(asMember.data).toEqual([{ id: org }]);
    const service = await client(secrets().secretKey).from("organizations").select("id").eq("id", org);
    expect(service.data).toEqual([{ id: org }]);
  });

  it("a key is never a user's token, a foreign key is refused, and a secret key from a browser is refused", async () => {
    const headers = (h: Record<string, string>) => ({ headers: h });
    const asBearer = await fetch(
      `${API_URL}/rest/v1/organizations?select=id`,
      headers({
        apikey: secrets().anonKey,
        Authorization: `Bearer ${secrets().secretKey}`,
      }),
    );
    expect(asBearer.status).toBe(401);
    const foreign = await fetch(`${API_URL}/rest/v1/organizations?select=id`, headers({ apikey: `sb_secret_${"x".repeat(32)}` }));
    expect(foreign.status).toBe(401);
    expect(await foreign.json()).toMatchObject({ message: "Invalid API key" });
    const browser = await fetch(
      `${API_URL}/rest/v1/organizations?select=id`,
      headers({ apikey: secrets().secretKey, "User-Agent": BROWSER_UA }),
    );
    expect(browser.status).toBe(401);
    expect(await browser.json()).toMatchObject({ message: "Forbidden use of secret API key in browser" });
    const publishableInBrowser = await fetch(
      `${API_URL}/rest/v1/permissions?select=key`,
      headers({
        apikey: secrets().publishableKey,
        Authorization: `Bearer ${memberToken}`,
        "User-Agent": BROWSER_UA,
      }),
    );
    expect(publishableInBrowser.status).toBe(200);
  });

  it("functions: a public one takes the publishable key; a service one takes the secret key and refuses the publishable", async () => {
    const health = await client(secrets().publishableKey).functions.invoke("health", { method: "GET" });
    expect(health.error).toBeNull();
    const asService = await client(secrets().secretKey).functions.invoke("analytics-aggregation", {
      body: { tasks: ["api_calls"] },
    });
    expect(asService.error).toBeNull();
    expect(asService.data).toHaveProperty("api_calls");
    const refused = await client(secrets().publishableKey).functions.invoke("analytics-aggregation", {
      body: { tasks: ["api_calls"] },
    });
    expect((refused.error as { context?: Response })?.context?.status).toBe(401);
  });

  it("storage and auth: the publishable key is anon there too (refused by policy, not as a malformed token)", async () => {
    const upload = await client(secrets().publishableKey).storage.from("files").upload(
      `${org}/x.txt`,
      new Blob(["x"], { type: "text/plain" }),
    );
    expect(upload.error?.message).toMatch(/row-level security/);
    const user = await client(secrets().publishableKey).auth.getUser(memberToken);
    expect(user.data.user?.id).toBe(member);
  });

  it("the broker takes the secret key as the service's login, and refuses another", async () => {
    const connect = (password: string) =>
      new Promise<mqtt.MqttClient>((resolve, reject) => {
        const c = mqtt.connect(`mqtt://${HOST}:${PORTS.mqtt}`, {
          username: "service",
          password,
          reconnectPeriod: 0,
          connectTimeout: 3000,
        });
        c.once("connect", () => resolve(c));
        c.once("error", (e) => {
          c.end(true);
          reject(e);
        });
      });
    const service = await connect(secrets().secretKey);
    await service.publishAsync(`org/${org}/events`, JSON.stringify({ probe: true }), { qos: 1 });
    await service.endAsync();
    await expect(connect(`sb_secret_${"y".repeat(32)}`)).rejects.toMatchObject({ code: 5 }); // MQTT 3.1.1: not authorized
  });
});
