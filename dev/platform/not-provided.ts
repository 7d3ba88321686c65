// What hosted Supabase offers and the local stack does not run: the config.toml switches it
// ignores (npm start warns about each one that is on) and the hosted paths it does not serve (the
// gateway answers 501 not_provided_locally naming the feature, and records the request so
// `npm run status` can say what was asked for). One table, so the three never disagree.
import fs from "node:fs";

export interface MissingFeature {
  feature: string;
  /** The config.toml switch (dotted section path) that asks for it, if one does. */
  configSwitch?: string;
  /** Hosted paths that belong to it. */
  paths?: RegExp;
  /** What to use here instead. */
  instead: string;
}

export const NOT_PROVIDED: readonly MissingFeature[] = [
  {
    feature: "Realtime",
    configSwitch: "realtime",
    paths: /^\/realtime\/v1(\/|$)/,
    instead: "the project's real-time messages go through MQTT (docs/notifications.md)",
  },
  { feature: "Studio", configSwitch: "studio", paths: /^\/pg(\/|$)/, instead: "psql on the DB URL; the console on :54323" },
  {
    feature: "Storage image transformations",
    configSwitch: "storage.image_transformation",
    paths: /^\/storage\/v1\/render\/image\//,
    instead: "download the original object",
  },
  {
    feature: "Storage S3 protocol",
    configSwitch: "storage.s3_protocol",
    paths: /^\/storage\/v1\/s3(\/|$)/,
    instead: "the Storage API",
  },
  { feature: "Storage vector buckets", configSwitch: "storage.vector", paths: /^\/storage\/v1\/vector(\/|$)/, instead: "none" },
  {
    feature: "Storage analytics buckets",
    configSwitch: "storage.analytics",
    paths: /^\/storage\/v1\/iceberg(\/|$)/,
    instead: "none",
  },
  {
    feature: "Logs and analytics (Logflare)",
    configSwitch: "analytics",
    paths: /^\/analytics\/v1(\/|$)/,
    instead: "the JSON logs in .stack/logs",
  },
  { feature: "GraphQL (pg_graphql)", paths: /^\/graphql\/v1(\/|$)/, instead: "the Data API under /rest/v1" },
  {
    feature: "Auth with OAuth providers, SSO and SAML",
    configSwitch: "auth.external",
    paths: /^\/auth\/v1\/(authorize|callback|sso|saml)(\/|$)/,
    instead: "e-mail and password, magic links and e-mail codes",
  },
  { feature: "Auth multi-factor", configSwitch: "auth.mfa", paths: /^\/auth\/v1\/factors(\/|$)/, instead: "none" },
  { feature: "Auth phone sign-in (SMS)", configSwitch: "auth.sms", instead: "e-mail sign-in" },
  { feature: "Auth anonymous sign-ins", configSwitch: "auth.enable_anonymous_sign_ins", instead: "none" },
  { feature: "Auth OAuth server", configSwitch: "auth.oauth_server", paths: /^\/auth\/v1\/oauth(\/|$)/, instead: "none" },
];

export function featureOfPath(pathname: string): MissingFeature | null {
  return NOT_PROVIDED.find((f) => f.paths?.test(pathname)) ?? null;
}

/**
 * The switches of config.toml that ask for something the stack does not run. A section counts as
 * on when its `enabled` is true; a boolean key (auth.enable_anonymous_sign_ins) when it is true;
 * `auth.external` when any provider is enabled; `auth.mfa` when any factor can be enrolled.
 */
export function ignoredSwitches(raw: Record<string, unknown>): MissingFeature[] {
  const at = (p: string) => p.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], raw);
  const on = (p: string): boolean => {
    const v = at(p) as Record<string, unknown> | boolean | undefined;
    if (p === "auth.external") {
      return Object.values((v ?? {}) as Record<string, { enabled?: boolean }>).some((x) => x?.enabled === true);
    }
    if (p === "auth.mfa") {
      return Object.values((v ?? {}) as Record<string, { enroll_enabled?: boolean }>).some((x) => x?.enroll_enabled === true);
    }
    if (typeof v === "boolean") return v;
    return (v as Record<string, unknown> | undefined)?.enabled === true;
  };
  return NOT_PROVIDED.filter((f) => f.configSwitch && on(f.configSwitch));
}

/** Requests for missing features, by feature: how many and when the last came. */
export type AskedFor = Record<string, { count: number; last: string; path: string }>;

export function recordAsk(file: string, feature: MissingFeature, pathname: string) {
  let asked: AskedFor = {};
  try {
    asked = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    // first ask, or a file from an older run that cannot be read: start again
  }
  const prev = asked[feature.feature];
  asked[feature.feature] = { count: (prev?.count ?? 0) + 1, last: new Date().toISOString(), path: pathname };
  fs.writeFileSync(file, JSON.stringify(asked, null, 2));
}

export function readAsks(file: string): AskedFor {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return {};
  }
}
