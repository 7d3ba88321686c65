// The project's JWT signing keys, as hosted Supabase Auth holds them: the file config.toml's
// `[auth] signing_keys_path` names (what `supabase gen signing-key --algorithm ES256 [--append]`
// writes: a JSON array of private JWKs). As GoTrue does, the key whose `key_ops` include "sign"
// signs new tokens (the first such key); every key in the file verifies, so a key kept for
// verification only (key_ops ["verify"]) is the previous key of a rotation, and a key removed from
// the file stops verifying. The public halves are the JWKS served at /auth/v1/.well-known/jwks.json.
// The file is re-read when it changes, so a rotation needs no restart.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { exportJWK, generateKeyPair, importJWK, type JSONWebKeySet, type JWK, SignJWT } from "jose";
import { z } from "zod";
import type { TokenKeys } from "../../../supabase/functions/_shared/access-token.ts";

const PrivateJwk = z.object({
  kty: z.enum(["EC", "RSA"]),
  kid: z.string().min(1).max(200),
  alg: z.enum(["ES256", "RS256"]),
  key_ops: z.array(z.string()).optional(),
  use: z.string().optional(),
  d: z.string().min(1),
}).passthrough().refine((k) => (k.alg === "ES256") === (k.kty === "EC"), "alg ES256 goes with kty EC, RS256 with RSA");
const KeyFile = z.array(PrivateJwk).min(1);

export type PrivateJwk = z.infer<typeof PrivateJwk>;

/** The private members of EC and RSA JWKs: never published. */
const PRIVATE_MEMBERS = new Set(["d", "p", "q", "dp", "dq", "qi", "oth", "k"]);

export function publicJwk(key: PrivateJwk): JWK {
  const pub: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(key)) if (!PRIVATE_MEMBERS.has(k) && k !== "ext") pub[k] = v;
  pub.key_ops = ["verify"];
  return pub as JWK;
}

/** A new private key in the shape `supabase gen signing-key --algorithm ES256` writes. */
export async function newSigningKey(keyOps: string[] = ["sign", "verify"]): Promise<PrivateJwk> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  return {
    kty: "EC",
    kid: crypto.randomUUID(),
    use: "sig",
    key_ops: keyOps,
    alg: "ES256",
    ext: true,
    ...jwk,
  } as PrivateJwk;
}

/** Makes the keys file with one ES256 signing key when it does not exist (a new project's default). */
export async function ensureSigningKeysFile(file: string): Promise<boolean> {
  if (fs.existsSync(file)) return false;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify([await newSigningKey()], null, 2) + "\n", { mode: 0o600 });
  return true;
}

export function readSigningKeys(file: string): PrivateJwk[] {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`signing keys file ${file} cannot be read as JSON: ${(e as Error).message}`);
  }
  const parsed = KeyFile.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`signing keys file ${file} is not an array of private ES256/RS256 JWKs: ${parsed.error.issues[0]?.message}`);
  }
  if (new Set(parsed.data.map((k) => k.kid)).size !== parsed.data.length) {
    throw new Error(`signing keys file ${file}: two keys share a kid`);
  }
  return parsed.data;
}

export interface KeySet {
  /** The key new tokens are signed with; null when no key may sign. */
  signing: { kid: string; alg: "ES256" | "RS256"; key: CryptoKey | Uint8Array } | null;
  jwks: JSONWebKeySet;
}

/** Reads the keys file, re-reading it when it changed (checked at most every `recheckMs`). */
export class SigningKeys {
  private current: KeySet | null = null;
  private stamp = "";
  private checkedAt = 0;
  private loading: Promise<KeySet> | null = null;

  readonly file: string;
  private readonly recheckMs: number;

  constructor(file: string, recheckMs = 500) {
    this.file = file;
    this.recheckMs = recheckMs;
  }

  /** The keys as last read; the file is looked at again once `recheckMs` has passed, or at once when `fresh`. */
  async get(fresh = false): Promise<KeySet> {
    const now = Date.now();
    if (this.current && !fresh && now - this.checkedAt < this.recheckMs) return this.current;
    this.checkedAt = now;
    let stamp: string;
    try {
      const st = fs.statSync(this.file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      throw new Error(`signing keys file ${this.file} is missing`);
    }
    if (this.current && stamp === this.stamp) return this.current;
    this.loading ??= this.load(stamp).finally(() => (this.loading = null));
    return this.loading;
  }

  private async load(stamp: string): Promise<KeySet> {
    const keys = readSigningKeys(this.file);
    const signer = keys.find((k) => k.key_ops?.includes("sign") ?? true);
    this.current = {
      signing: signer ? { kid: signer.kid, alg: signer.alg, key: await importPrivate(signer) } : null,
      jwks: { keys: keys.map(publicJwk) },
    };
    this.stamp = stamp;
    return this.current;
  }
}

/** WebCrypto refuses a private key whose key_ops name "verify", as the CLI's keys do: import the key material alone. */
function importPrivate(key: PrivateJwk) {
  const { key_ops: _ops, use: _use, ext: _ext, ...material } = key as PrivateJwk & { ext?: boolean };
  return importJWK(material as JWK, key.alg);
}

/** Signs claims as Supabase Auth does: with the signing key (alg and kid in the header), else HS256 with the legacy secret. */
export type TokenSigner = (claims: Record<string, unknown>) => Promise<string>;

export function tokenSigner(keys: SigningKeys | null, legacySecret: string | null): TokenSigner {
  const secret = legacySecret ? new TextEncoder().encode(legacySecret) : null;
  return async (claims) => {
    const set = keys ? await keys.get() : null;
    if (set?.signing) {
      return await new SignJWT(claims).setProtectedHeader({ alg: set.signing.alg, kid: set.signing.kid, typ: "JWT" })
        .sign(set.signing.key);
    }
    if (!secret) throw new Error("no signing key and no legacy JWT secret: nothing can sign tokens");
    return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret);
  };
}

const keyStores = new Map<string, SigningKeys>();
/** The signer for a project as its config.toml says: its signing keys file, else the legacy secret alone. */
export function projectSigner(config: { auth: { signingKeysPath: string | null } }, legacySecret: string | null): TokenSigner {
  return tokenSigner(signingKeysOf(config), legacySecret);
}

/** One store per keys file, shared by everything in a process that signs or verifies with it. */
export function signingKeysOf(config: { auth: { signingKeysPath: string | null } }): SigningKeys | null {
  const file = config.auth.signingKeysPath;
  if (!file) return null;
  let store = keyStores.get(file);
  if (!store) keyStores.set(file, store = new SigningKeys(file));
  return store;
}

/** The keys the local platform verifies with: the signing keys file as it is now, and the legacy secret. */
export function platformTokenKeys(keys: () => SigningKeys | null, legacySecret: string | null): TokenKeys {
  return {
    jwks: async () => {
      const store = keys();
      return store ? (await store.get()).jwks : null;
    },
    legacySecret: legacySecret ? new TextEncoder().encode(legacySecret) : null,
  };
}
