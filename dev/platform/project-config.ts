// Reads supabase/config.toml, the same file hosted deploys use, for what the local platform needs:
// functions' verify_jwt and the custom access token hook.
import fs from "node:fs";
import path from "node:path";
import { parse } from "smol-toml";

export interface ProjectConfig {
  verifyJwt(functionName: string): boolean;
  accessTokenHook: { schema: string; name: string } | null;
  jwtExpiry: number;
}

export function loadProjectConfig(supabaseDir: string): ProjectConfig {
  const raw = parse(fs.readFileSync(path.join(supabaseDir, "config.toml"), "utf8")) as Record<string, any>;
  const functions = (raw.functions ?? {}) as Record<string, { verify_jwt?: boolean }>;
  const hook = raw.auth?.hook?.custom_access_token;
  let accessTokenHook: ProjectConfig["accessTokenHook"] = null;
  if (hook?.enabled) {
    const m = /^pg-functions:\/\/[^/]+\/([^/]+)\/([^/]+)$/.exec(String(hook.uri ?? ""));
    if (!m) throw new Error(`config.toml: auth.hook.custom_access_token.uri must be pg-functions://<db>/<schema>/<function>, got ${hook.uri}`);
    accessTokenHook = { schema: m[1], name: m[2] };
  }
  return {
    verifyJwt: (name) => functions[name]?.verify_jwt !== false,
    accessTokenHook,
    jwtExpiry: Number(raw.auth?.jwt_expiry ?? 3600),
  };
}
