// Invites a person into an organization by e-mail, for members holding members.invite, and for a
// machine's API key holding it (x-api-key; docs/machines.md; the key invites as its creator would,
// never above admin): POST { org_id, email, role } → 201 { invitation_id, expires_at, mail } (invite.ts).
import { z } from "zod";
import { apiKeyGate } from "../_shared/api-keys.ts";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { apiCallCounterFromEnv } from "../_shared/usage/api-calls.ts";
import { inviteMember, serviceAuthClient } from "./invite.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  SITE_URL: z.string().url(),
});
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 2, onnotice: () => {} });
const auth = serviceAuthClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY);
const redis = redisFromEnv();
const gate = apiKeyGate({ sql, limiter: redisRateLimiter(redis) });

Deno.serve(
  serveHandler(
    "member-invite",
    {
      methods: ["POST"],
      callers: ["user", "api_key"],
      apiCalls: apiCallCounterFromEnv(redis),
      auth: { verifyApiKey: gate.verify },
    },
    async (req, ctx) => {
      // a key hears it was revoked, or lacks the scope, before anything is made; create_invitation
      // checks both again, live, as the key
      if (ctx.caller.kind === "api_key") await gate.run(ctx.caller, req, ctx.requestId, "members.invite", async () => {});
      return inviteMember(req, ctx, { sql, auth, siteUrl: env.SITE_URL });
    },
  ),
);
