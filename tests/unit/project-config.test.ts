// Reading supabase/config.toml for functions' verify_jwt and the auth hooks.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadProjectConfig } from "../../dev/platform/project-config.ts";
import { ROOT } from "../../dev/stack/config.ts";

function withConfig(toml: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfg-"));
  fs.writeFileSync(path.join(dir, "config.toml"), toml);
  return dir;
}

describe("project config", () => {
  it("reads the project's own config.toml: health is public, others verify JWTs", () => {
    const cfg = loadProjectConfig(path.join(ROOT, "supabase"));
    expect(cfg.verifyJwt("health")).toBe(false);
    expect(cfg.verifyJwt("anything-else")).toBe(true);
    expect(cfg.jwtExpiry).toBe(3600);
  });
  it("parses the custom access token hook uri", () => {
    const dir = withConfig(
      '[auth.hook.custom_access_token]\nenabled = true\nuri = "pg-functions://postgres/public/custom_access_token_hook"\n',
    );
    expect(loadProjectConfig(dir).accessTokenHook).toEqual({ schema: "public", name: "custom_access_token_hook" });
  });
  it("reads the project's password verification hook, and none when disabled", () => {
    expect(loadProjectConfig(path.join(ROOT, "supabase")).passwordVerificationHook)
      .toEqual({ schema: "public", name: "hook_password_verification_attempt" });
    const dir = withConfig(
      '[auth.hook.password_verification_attempt]\nenabled = false\nuri = "pg-functions://postgres/public/x"\n',
    );
    expect(loadProjectConfig(dir).passwordVerificationHook).toBeNull();
  });
  it("rejects a hook uri that is not pg-functions://", () => {
    const dir = withConfig('[auth.hook.custom_access_token]\nenabled = true\nuri = "https://example.com/hook"\n');
    expect(() => loadProjectConfig(dir)).toThrow(/pg-functions/);
  });
});
