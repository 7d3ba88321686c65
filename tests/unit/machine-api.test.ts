// The machine API's pure parts: where a request comes from (browser or not, which address), the
// org-api path on hosted and on the local gateway, page cursors, and the OpenAPI description's
// shape (every route, every reference resolvable). What the functions answer is the integration
// tests' (machine-api, api-key-attacks, device).
import { describe, expect, it } from "vitest";
import { sourceAddress } from "../../supabase/functions/_shared/api-keys.ts";
import { fromBrowser } from "../../supabase/functions/_shared/auth.ts";
import { openApiDocument } from "../../supabase/functions/org-api/openapi.ts";
import { routePath } from "../../supabase/functions/org-api/router.ts";
import { decodeCursor, encodeCursor, pathPattern, ROUTES } from "../../supabase/functions/org-api/routes.ts";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";

const req = (headers: Record<string, string>) => new Request("http://x/functions/v1/org-api/key", { headers });

describe("who sends a key", () => {
  it("a browser names its page's origin or says Mozilla/; servers and devices do neither", () => {
    expect(fromBrowser(req({ origin: "https://school.example" }))).toBe(true);
    expect(fromBrowser(req({ "user-agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15" }))).toBe(true);
    expect(fromBrowser(req({ "user-agent": "node" }))).toBe(false);
    expect(fromBrowser(req({ "user-agent": "curl/8.5.0" }))).toBe(false);
    expect(fromBrowser(req({}))).toBe(false);
  });

  it("the source address is the right-most x-forwarded-for entry, the one the platform's proxy wrote", () => {
    expect(sourceAddress(req({ "x-forwarded-for": "203.0.113.9" }))).toBe("203.0.113.9");
    expect(sourceAddress(req({ "x-forwarded-for": "1.2.3.4, 198.51.100.7" }))).toBe("198.51.100.7");
    expect(sourceAddress(req({}))).toBe("unknown");
  });
});

describe("org-api routes", () => {
  it("finds its path below the function's name, hosted (/org-api/...) and local (/functions/v1/org-api/...)", () => {
    expect(routePath("/org-api/files/abc")).toBe("/files/abc");
    expect(routePath("/functions/v1/org-api/files/abc")).toBe("/files/abc");
    expect(routePath("/functions/v1/org-api/members/")).toBe("/members");
    expect(routePath("/functions/v1/org-api")).toBe("/");
  });

  it("matches path templates by whole segments", () => {
    expect(pathPattern("/files/{file_id}").exec("/files/abc")?.groups).toEqual({ file_id: "abc" });
    expect(pathPattern("/files/{file_id}").test("/files/abc/download")).toBe(false);
    expect(pathPattern("/key").test("/key")).toBe(true);
  });

  it("cursors go round, timestamps at Postgres's precision, and anything else is refused", () => {
    const c = encodeCursor(["2026-12-07 02:13:45.855948+00", "c0aefc04-eadc-4ad4-9f5b-179e405e3cf7"]);
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c, 2)).toEqual(["2026-12-07 02:13:45.855948+00", "c0aefc04-eadc-4ad4-9f5b-179e405e3cf7"]);
    expect(() => decodeCursor(c, 1)).toThrow(HttpError);
    expect(() => decodeCursor("not-a-cursor", 2)).toThrow(HttpError);
  });

  it("each method and path is declared once, with a scope that is a permission or none", () => {
    const seen = ROUTES.map((r) => `${r.method} ${r.path}`);
    expect(new Set(seen).size).toBe(seen.length);
    for (const r of ROUTES) expect(r.scope === null || /^[a-z_]+\.[a-z_]+$/.test(r.scope)).toBe(true);
  });
});

describe("the OpenAPI description", () => {
  const doc = openApiDocument("https://project.example/functions/v1") as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
    components: { schemas: Record<string, unknown> };
  };

  it("lists every org-api route and the three functions that take keys", () => {
    expect(doc.openapi).toBe("3.1.0");
    const ops = Object.entries(doc.paths).flatMap(([p, o]) => Object.keys(o).map((m) => `${m.toUpperCase()} ${p}`));
    for (const r of ROUTES) expect(ops).toContain(`${r.method} /org-api${r.path}`);
    for (const fn of ["analytics-ingest", "file-upload", "member-invite"]) expect(ops).toContain(`POST /${fn}`);
  });

  it("refers only to schemas it defines", () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(20);
    expect(refs.filter((r) => !(r in doc.components.schemas))).toEqual([]);
    expect(JSON.stringify(doc)).not.toContain("#/$defs/");
  });
});
