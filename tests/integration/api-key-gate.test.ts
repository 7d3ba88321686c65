// The functions' API key gate (_shared/api-keys.ts) against the stack's Postgres and Redis: when
// one request's key is refused (refuse() forgets it) while other requests are still asking about
// the same key, those requests get the key's answer, never a 500.
import crypto from "node:crypto";
import { Redis } from "@upstash/redis";
import { afterAll, describe, expect, it } from "vitest";
import { apiKeyGate } from "../../supabase/functions/_shared/api-keys.ts";
import { connectDatabase } from "../../supabase/functions/_shared/db.ts";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";
import { redisRateLimiter } from "../../supabase/functions/_shared/rate-limit.ts";
import { createKey } from "../helpers/machines.ts";
import { addMember, createOrg } from "../helpers/organizations.ts";
import { adminSql, DB_URL, HOST, PORTS, secrets } from "../helpers/stack.ts";

const admin = adminSql();
const sql = connectDatabase(DB_URL, { max: 4 });
const redis = new Redis({ url: `http://${HOST}:${PORTS.upstash}`, token: secrets().upstashToken, enableTelemetry: false });
const gate = apiKeyGate({ sql, limiter: redisRateLimiter(redis, `gate-test-${crypto.randomUUID().slice(0, 8)}`) });
afterAll(async () => {
  await sql.end();
  await admin.end();
});

describe("the API key gate", () => {
  it("answers requests asking about a key it forgets meanwhile with the key's real answer", async () => {
    const org = await createOrg(admin, "Gate School");
    const owner = await addMember(admin, org, "owner");
    const k = await createKey(admin, org, owner.id, ["events.write"]);
    const req = new Request("http://gate.test/", { headers: { "x-api-key": k.key, "x-forwarded-for": "203.0.113.9" } });
    // the key's row held: verification (which stamps last_used_at) waits on it
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const locking = admin.begin(async (tx) => {
      await tx`select 1 from public.api_keys where id = ${k.id} for update`;
      await held;
    });
    await new Promise((r) => setTimeout(r, 200));
    const outcome = (p: Promise<unknown>) =>
      p.then(() => "served", (e) => e instanceof HttpError ? `${e.status} ${e.code}` : `crashed: ${e}`);
    const asking = [gate.verify(k.key, "gate-1", req), gate.verify(k.key, "gate-2", req)].map(outcome);
    await new Promise((r) => setTimeout(r, 200));
    // another request, refused by its transaction's own check, forgets the key while those ask
    const refused = outcome(gate.refuse(req, "gate-3"));
    release();
    await locking;
    expect(await Promise.all(asking)).toEqual(["served", "served"]);
    expect(await refused).toBe("401 invalid_api_key"); // the key is live: refuse() names no other reason
    await admin`delete from public.organizations where id = ${org}`;
  });
});
