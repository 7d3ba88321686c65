// verifyAccessToken against keys made here: ES256 by kid, rotation, and the forgeries every
// verifier must refuse (alg none, HS256 keyed with a public key, unknown kid, wrong alg, expiry).
import { base64url, exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { cachedVerifier, jwksSource, parseJwks, verifyAccessToken } from "../../supabase/functions/_shared/access-token.ts";

const now = () => Math.floor(Date.now() / 1000);
const claims = () => ({ role: "authenticated", sub: "u1", exp: now() + 60 });

async function keyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig", key_ops: ["verify"] };
  const sign = (c: Record<string, unknown> = claims(), header: Record<string, unknown> = {}) =>
    new SignJWT(c).setProtectedHeader({ alg: "ES256", kid, typ: "JWT", ...header }).sign(privateKey);
  return { jwk, sign };
}

const keysOf = (set: JSONWebKeySet | null, legacySecret: Uint8Array | null = null) => ({
  jwks: () => Promise.resolve(set),
  legacySecret,
});

describe("verifyAccessToken", () => {
  it("accepts an ES256 token whose kid is in the JWKS, and refuses it once the key is gone", async () => {
    const a = await keyPair("a"), b = await keyPair("b");
    const token = await a.sign();
    expect(await verifyAccessToken(token, keysOf({ keys: [a.jwk, b.jwk] }))).toMatchObject({ ok: true, claims: { sub: "u1" } });
    expect(await verifyAccessToken(token, keysOf({ keys: [b.jwk] }))).toMatchObject({ ok: false, code: "invalid_jwt" });
  });

  it("refuses a token signed by another key under a published kid", async () => {
    const a = await keyPair("a"), impostor = await keyPair("a");
    expect(await verifyAccessToken(await impostor.sign(), keysOf({ keys: [a.jwk] }))).toMatchObject({ ok: false });
  });

  it("refuses alg none, a missing kid, a header alg that is not the key's, and expired tokens", async () => {
    const a = await keyPair("a");
    const set = keysOf({ keys: [a.jwk] });
    const body = base64url.encode(JSON.stringify(claims()));
    const none = `${base64url.encode(JSON.stringify({ alg: "none", kid: "a" }))}.${body}.`;
    expect(await verifyAccessToken(none, set)).toMatchObject({ ok: false, code: "invalid_jwt" });
    const noKid = await new SignJWT(claims()).setProtectedHeader({ alg: "ES256" }).sign(
      (await generateKeyPair("ES256")).privateKey,
    );
    expect(await verifyAccessToken(noKid, set)).toMatchObject({ ok: false, code: "invalid_jwt" });
    const [h, p, sig] = (await a.sign()).split(".");
    const relabelled = `${
      base64url.encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(base64url.decode(h))), alg: "RS256" }))
    }.${p}.${sig}`;
    expect(await verifyAccessToken(relabelled, set)).toMatchObject({ ok: false, code: "invalid_jwt" });
    expect(await verifyAccessToken(await a.sign({ ...claims(), exp: now() - 120 }), set)).toMatchObject({
      ok: false,
      code: "jwt_expired",
    });
  });

  it("refuses HS256 tokens keyed with a public key, with or without a legacy secret configured", async () => {
    const a = await keyPair("a");
    const forged = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: "a" })
      .sign(new TextEncoder().encode(JSON.stringify(a.jwk)));
    expect(await verifyAccessToken(forged, keysOf({ keys: [a.jwk] }))).toMatchObject({ ok: false, code: "invalid_jwt" });
    const legacy = new TextEncoder().encode("legacy-secret-legacy-secret-legacy");
    expect(await verifyAccessToken(forged, keysOf({ keys: [a.jwk] }, legacy))).toMatchObject({ ok: false });
    const real = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256" }).sign(legacy);
    expect(await verifyAccessToken(real, keysOf({ keys: [a.jwk] }, legacy))).toMatchObject({ ok: true });
    expect(await verifyAccessToken(real, keysOf({ keys: [a.jwk] }, null))).toMatchObject({ ok: false });
  });

  it("asks for a fresh set once for an unknown kid, and at most once per interval", async () => {
    const a = await keyPair("a"), b = await keyPair("b");
    let served: JSONWebKeySet = { keys: [a.jwk] };
    let fetches = 0;
    const realFetch = globalThis.fetch;
    globalThis.fetch = (() => {
      fetches++;
      return Promise.resolve(new Response(JSON.stringify(served)));
    }) as typeof fetch;
    try {
      const source = jwksSource(JSON.stringify({ keys: [a.jwk] }), "http://jwks.invalid/", 60_000);
      const keys = { ...source, legacySecret: null };
      served = { keys: [a.jwk, b.jwk] };
      expect(await verifyAccessToken(await b.sign(), keys)).toMatchObject({ ok: true });
      expect(fetches).toBe(1);
      const stranger = await keyPair("c");
      for (let i = 0; i < 5; i++) expect(await verifyAccessToken(await stranger.sign(), keys)).toMatchObject({ ok: false });
      expect(fetches).toBe(1);
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  it("reads both JWKS forms and refuses malformed ones", () => {
    expect(parseJwks('{"keys":[{"kid":"a"}]}')).toEqual({ keys: [{ kid: "a" }] });
    expect(parseJwks('[{"kid":"a"}]')).toEqual({ keys: [{ kid: "a" }] });
    expect(parseJwks("{")).toBeNull();
    expect(parseJwks('{"keys":[1]}')).toBeNull();
    expect(parseJwks(undefined)).toBeNull();
  });
});

describe("cachedVerifier", () => {
  it("answers from its cache only while the token lives and its key is published", async () => {
    const a = await keyPair("a"), b = await keyPair("b");
    let set: JSONWebKeySet = { keys: [a.jwk, b.jwk] };
    const verify = cachedVerifier({ jwks: () => Promise.resolve(set), legacySecret: null });
    const token = await a.sign();
    expect(await verify(token)).toMatchObject({ ok: true, claims: { sub: "u1" } });
    expect(await verify(token)).toMatchObject({ ok: true });
    set = { keys: [b.jwk] }; // a's key removed: the cached answer must not outlive it
    expect(await verify(token)).toMatchObject({ ok: false, code: "invalid_jwt" });
    // early in a second, so that the token is still alive when first verified
    if (Date.now() % 1000 > 300) await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
    const shortLived = await b.sign({ ...claims(), exp: now() + 1 });
    expect(await verify(shortLived)).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 1100 + (1000 - (Date.now() % 1000))));
    expect(await verify(shortLived)).toMatchObject({ ok: false, code: "jwt_expired" });
  });

  it("never caches a refusal: a token refused while its key was unknown verifies once the key is published", async () => {
    const a = await keyPair("a");
    let set: JSONWebKeySet = { keys: [] };
    const verify = cachedVerifier({ jwks: () => Promise.resolve(set), legacySecret: null });
    const token = await a.sign();
    expect(await verify(token)).toMatchObject({ ok: false });
    set = { keys: [a.jwk] };
    expect(await verify(token)).toMatchObject({ ok: true });
  });
});
