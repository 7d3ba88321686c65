// Reads supabase/config.toml, the same file hosted deploys use, for what the local platform needs:
// functions' verify_jwt, the auth hooks (custom access token, password verification attempt) and
// the Data API's settings ([api]: exposed schemas, extra search path, max rows) for PostgREST.
import fs from "node:fs";
import path from "node:path";
import { parse } from "smol-toml";

export interface ProjectConfig {
  verifyJwt(functionName: string): boolean;
  accessTokenHook: PgFunctionHook | null;
  passwordVerificationHook: PgFunctionHook | null;
  jwtExpiry: number;
  api: { schemas: string[]; extraSearchPath: string[]; maxRows: number };
  auth: AuthSettings;
}

/** config.toml's [auth] settings the auth stand-in follows, named as GoTrue's. */
export interface AuthSettings {
  siteUrl: string;
  additionalRedirectUrls: string[];
  enableSignup: boolean;
  enableConfirmations: boolean;
  refreshTokenRotation: boolean;
  refreshTokenReuseInterval: number;
  minimumPasswordLength: number;
  passwordRequirements: "" | "letters_digits" | "lower_upper_letters_digits" | "lower_upper_letters_digits_symbols";
  otpLength: number;
  otpExpiry: number;
  doubleConfirmChanges: boolean;
  /** [auth.email] max_frequency in seconds: the least time between two mails of one kind to one person. */
  maxFrequency: number;
  /** [auth] signing_keys_path, resolved against supabase/ (as the supabase CLI resolves it); null: legacy HS256 only. */
  signingKeysPath: string | null;
  /** Per hour, per 5 minutes per address: [auth.rate_limit]. */
  rateLimit: { emailSent: number; signInSignUps: number; tokenRefresh: number; tokenVerifications: number };
  /** [auth.email.template.<name>] (invite, magic_link, confirmation, recovery, email_change): subject and body, read once. */
  emailTemplates: Record<string, EmailTemplate>;
}

/** A mail's subject and body as Go templates, GoTrue's way (either may be missing: GoTrue's default then). */
export interface EmailTemplate {
  subject?: string;
  content?: string;
}

/** The templates config.toml names; content_path is relative to the project (the folder holding supabase/), as the CLI reads it. */
function emailTemplates(
  raw: { auth?: { email?: { template?: Record<string, Record<string, unknown>> } } },
  supabaseDir: string,
): Record<string, EmailTemplate> {
  const out: Record<string, EmailTemplate> = {};
  for (const [name, t] of Object.entries(raw.auth?.email?.template ?? {})) {
    out[name] = {
      ...(typeof t.subject === "string" ? { subject: t.subject } : {}),
      ...(typeof t.content_path === "string"
        ? { content: fs.readFileSync(path.resolve(path.dirname(supabaseDir), t.content_path), "utf8") }
        : {}),
    };
  }
  return out;
}

export interface PgFunctionHook {
  schema: string;
  name: string;
}

/** An enabled `[auth.hook.<kind>]` with a pg-functions:// uri (the only kind the local stack runs). */
function pgFunctionHook(raw: Record<string, any>, kind: string): PgFunctionHook | null {
  const hook = raw.auth?.hook?.[kind];
  if (!hook?.enabled) return null;
  const m = /^pg-functions:\/\/[^/]+\/([^/]+)\/([^/]+)$/.exec(String(hook.uri ?? ""));
  if (!m) throw new Error(`config.toml: auth.hook.${kind}.uri must be pg-functions://<db>/<schema>/<function>, got ${hook.uri}`);
  return { schema: m[1], name: m[2] };
}

export function loadProjectConfig(supabaseDir: string): ProjectConfig {
  const raw = parse(fs.readFileSync(path.join(supabaseDir, "config.toml"), "utf8")) as Record<string, any>;
  const functions = (raw.functions ?? {}) as Record<string, { verify_jwt?: boolean }>;
  return {
    verifyJwt: (name) => functions[name]?.verify_jwt !== false,
    accessTokenHook: pgFunctionHook(raw, "custom_access_token"),
    passwordVerificationHook: pgFunctionHook(raw, "password_verification_attempt"),
    jwtExpiry: Number(raw.auth?.jwt_expiry ?? 3600),
    auth: {
      siteUrl: String(raw.auth?.site_url ?? "http://127.0.0.1:3000"),
      additionalRedirectUrls: (raw.auth?.additional_redirect_urls ?? []).map(String),
      enableSignup: raw.auth?.enable_signup !== false,
      enableConfirmations: raw.auth?.email?.enable_confirmations === true,
      refreshTokenRotation: raw.auth?.enable_refresh_token_rotation !== false,
      refreshTokenReuseInterval: Number(raw.auth?.refresh_token_reuse_interval ?? 10),
      minimumPasswordLength: Math.max(6, Number(raw.auth?.minimum_password_length ?? 6)),
      passwordRequirements: (raw.auth?.password_requirements ?? "") as AuthSettings["passwordRequirements"],
      otpLength: Number(raw.auth?.email?.otp_length ?? 6),
      otpExpiry: Number(raw.auth?.email?.otp_expiry ?? 3600),
      doubleConfirmChanges: raw.auth?.email?.double_confirm_changes !== false,
      maxFrequency: goDurationSeconds(String(raw.auth?.email?.max_frequency ?? "1m"), "auth.email.max_frequency"),
      signingKeysPath: raw.auth?.signing_keys_path ? path.resolve(supabaseDir, String(raw.auth.signing_keys_path)) : null,
      rateLimit: {
        emailSent: Number(raw.auth?.rate_limit?.email_sent ?? 2),
        signInSignUps: Number(raw.auth?.rate_limit?.sign_in_sign_ups ?? 30),
        tokenRefresh: Number(raw.auth?.rate_limit?.token_refresh ?? 150),
        tokenVerifications: Number(raw.auth?.rate_limit?.token_verifications ?? 30),
      },
      emailTemplates: emailTemplates(raw, supabaseDir),
    },
    api: {
      // hosted exposes these two with whatever the project lists
      schemas: [...new Set(["public", "graphql_public", ...(raw.api?.schemas ?? [])].map(String))],
      extraSearchPath: (raw.api?.extra_search_path ?? ["public", "extensions"]).map(String),
      maxRows: Number(raw.api?.max_rows ?? 1000),
    },
  };
}

/** A Go duration as GoTrue reads config.toml's ("1s", "1m30s", "500ms"), in seconds. */
export function goDurationSeconds(text: string, name: string): number {
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, "µs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (text === "0") return 0;
  if (!parts.length || parts.map((p) => p[0]).join("") !== text) {
    throw new Error(`config.toml: ${name} must be a duration such as "1s" or "1m", got ${JSON.stringify(text)}`);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]], 0);
}
