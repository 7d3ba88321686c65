// Invites a person into an organization by e-mail, for members holding members.invite:
// POST { org_id, email, role } → 201 { invitation_id, expires_at, mail } (invite.ts).
import { z } from "zod";
import { connectDatabase } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { redisApiCallCounter } from "../_shared/usage/api-calls.ts";
import { inviteMember, serviceAuthClient } from "./invite.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  SITE_URL: z.string().url(),
});
const sql = connectDatabase(env.SUPABASE_DB_URL, { max: 2, onnotice: () => {} });
const auth = serviceAuthClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY);

Deno.serve(
  serveHandler(
    "member-invite",
    { methods: ["POST"], callers: ["user"], apiCalls: redisApiCallCounter(redisFromEnv()) },
    (req, ctx) => inviteMember(req, ctx, { sql, auth, siteUrl: env.SITE_URL }),
  ),
);
