// The stack's secrets, made once on first start and kept in .stack/secrets.json (git-ignored):
// the JWT secret, the legacy anon and service_role keys signed with it, the new publishable and
// secret keys (sb_publishable_…, sb_secret_…: random, not JWTs), and service credentials
// (among them the passwords of `authenticator`, the role PostgREST-style callers log in as, and of
// `mqtt_broker`, the role the broker's auth plugin logs in as).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SignJWT } from "jose";
import { paths } from "./config.ts";

export interface StackSecrets {
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  upstashToken: string;
  mqttBrokerDbPassword: string;
  authenticatorPassword: string;
  dashboardPassword: string;
  publishableKey: string;
  secretKey: string;
}

/** Random service credentials; a secrets file from an older stack gets the ones it lacks. */
const RANDOM_SECRETS = ["upstashToken", "mqttBrokerDbPassword", "authenticatorPassword", "dashboardPassword"] as const;
/** The new API keys: a prefix naming the kind, then random bytes (hosted's shape). */
const PREFIXED_KEYS = { publishableKey: "sb_publishable_", secretKey: "sb_secret_" } as const;
const prefixedKey = (prefix: string) => prefix + crypto.randomBytes(24).toString("base64url");

const TEN_YEARS = 10 * 365 * 24 * 3600;

async function apiKey(role: "anon" | "service_role", secret: string) {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ iss: "supabase-demo", role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + TEN_YEARS)
    .sign(new TextEncoder().encode(secret));
}

export async function ensureSecrets(): Promise<StackSecrets> {
  const existing = readSecrets();
  if (existing) {
    const missing = RANDOM_SECRETS.filter((k) => !existing[k]);
    const missingKeys = (Object.keys(PREFIXED_KEYS) as (keyof typeof PREFIXED_KEYS)[]).filter((k) => !existing[k]);
    if (missing.length === 0 && missingKeys.length === 0) return existing;
    const upgraded = { ...existing };
    for (const k of missing) upgraded[k] = crypto.randomBytes(24).toString("base64url");
    for (const k of missingKeys) upgraded[k] = prefixedKey(PREFIXED_KEYS[k]);
    fs.writeFileSync(paths.secrets, JSON.stringify(upgraded, null, 2), { mode: 0o600 });
    return upgraded;
  }
  const jwtSecret = crypto.randomBytes(32).toString("hex");
  const secrets: StackSecrets = {
    jwtSecret,
    anonKey: await apiKey("anon", jwtSecret),
    serviceRoleKey: await apiKey("service_role", jwtSecret),
    publishableKey: prefixedKey(PREFIXED_KEYS.publishableKey),
    secretKey: prefixedKey(PREFIXED_KEYS.secretKey),
    ...(Object.fromEntries(RANDOM_SECRETS.map((k) => [k, crypto.randomBytes(24).toString("base64url")])) as Record<
      (typeof RANDOM_SECRETS)[number],
      string
    >),
  };
  fs.mkdirSync(path.dirname(paths.secrets), { recursive: true });
  fs.writeFileSync(paths.secrets, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

export function readSecrets(): StackSecrets | null {
  try {
    return JSON.parse(fs.readFileSync(paths.secrets, "utf8")) as StackSecrets;
  } catch {
    return null;
  }
}
