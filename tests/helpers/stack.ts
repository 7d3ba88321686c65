// What integration tests need from the running local stack: its URLs and keys, a superuser
// connection for setup and catalog checks only, users, and access tokens made like GoTrue's.
import fs from "node:fs";
import crypto from "node:crypto";
import postgres from "postgres";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { DB_URL, HOST, paths, PORTS } from "../../dev/stack/config.ts";
import type { StackSecrets } from "../../dev/stack/secrets.ts";
import { loadProjectConfig } from "../../dev/platform/project-config.ts";
import { mintAccessToken } from "../../dev/platform/auth/tokens.ts";
import { projectSigner } from "../../dev/platform/auth/signing-keys.ts";

export { DB_URL, HOST, PORTS };
export const API_URL = `http://${HOST}:${PORTS.gateway}`;

export function secrets(): StackSecrets {
  return JSON.parse(fs.readFileSync(paths.secrets, "utf8"));
}

/** Superuser connection: for test setup and catalog checks, never to test what a user may see. */
export function adminSql(max = 2) {
  // Bounded statements: setup that waits on a lock fails the test instead of hanging the run.
  return postgres(DB_URL, { max, onnotice: () => {}, connection: { statement_timeout: 30_000 } });
}

/**
 * The connection API requests use: `authenticator`, which can do nothing itself and only switches
 * to anon, authenticated or service_role inside a request context (as PostgREST connects).
 */
export function apiSql(max = 2) {
  const url = new URL(DB_URL);
  url.username = "authenticator";
  url.password = secrets().authenticatorPassword;
  return postgres(url.toString(), { max, onnotice: () => {}, connection: { statement_timeout: 30_000 } });
}

export async function createUser(sql: postgres.Sql, email = `user-${crypto.randomUUID().slice(0, 8)}@test.local`) {
  const id = crypto.randomUUID();
  await sql`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
            values (${id}, 'authenticated', 'authenticated', ${email}, now(), '{"provider":"email"}', '{}')`;
  return { id, email };
}

export async function tokenFor(sql: postgres.Sql, userId: string, expiresIn?: number) {
  return mintAccessToken(
    sql,
    projectSigner(loadProjectConfig(paths.supabase), secrets().jwtSecret),
    loadProjectConfig(paths.supabase),
    {
      userId,
      expiresIn,
      supabaseUrl: API_URL,
    },
  );
}

/** A token's claims, verified as any outside verifier does: against the project's published JWKS. */
export async function verifiedClaims(token: string): Promise<Record<string, unknown>> {
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${API_URL}/auth/v1/.well-known/jwks.json`)), {
    algorithms: ["ES256", "RS256"],
  });
  return payload as Record<string, unknown>;
}

/** One roll-up run of the caller's own: pg_cron's every-minute run takes the same lock, and a
 * caller that meets it is told `busy` at once, before that run's work has committed. */
export async function rollUpAnalytics(sql: postgres.Sql) {
  await waitUntil(
    "a roll-up run that is not busy",
    async () => {
      const [{ busy }] = await sql<{ busy: boolean }[]>`select busy from app.rollup_analytics()`;
      return !busy;
    },
    15_000,
    100,
  );
}

export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
