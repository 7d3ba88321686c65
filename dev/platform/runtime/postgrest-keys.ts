// The key set PostgREST verifies with (its `jwt-secret`, read from a file): the project's public
// signing keys, plus the legacy HS256 secret as a symmetric JWK while one is configured, so both
// kinds of token keep working through a rotation, as on hosted.
import { base64url, type JSONWebKeySet, type JWK } from "jose";

export function postgrestJwks(publicKeys: JSONWebKeySet | null, legacySecret: string | null): JSONWebKeySet {
  const keys: JWK[] = [...(publicKeys?.keys ?? [])];
  if (legacySecret) keys.push({ kty: "oct", k: base64url.encode(legacySecret), alg: "HS256" });
  return { keys };
}
