// The caller of a function, from its access token. Functions run behind verify_jwt (hosted: the
// edge; locally: the gateway), which has already checked the signature and expiry, so the claims
// are read, not verified again here.
import { decodeJwt } from "jose";
import { HttpError } from "./errors.ts";

export interface Caller {
  role: "authenticated" | "service_role" | "anon";
  userId: string | null;
  claims: Record<string, unknown>;
  token: string;
}

export function callerOf(req: Request): Caller {
  const m = /^Bearer (\S+)$/.exec(req.headers.get("authorization") ?? "");
  if (!m) throw new HttpError(401, "unauthorized", "An access token is required.");
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(m[1]) as Record<string, unknown>;
  } catch {
    throw new HttpError(401, "unauthorized", "The access token cannot be read.");
  }
  const role = claims.role;
  if (role !== "authenticated" && role !== "service_role" && role !== "anon") throw new HttpError(401, "unauthorized", "Unknown role.");
  return { role, userId: typeof claims.sub === "string" ? claims.sub : null, claims, token: m[1] };
}

/** Request headers the audit log records. */
export function auditHeaders(req: Request, requestId: string) {
  return {
    "x-forwarded-for": req.headers.get("x-forwarded-for") ?? "",
    "user-agent": req.headers.get("user-agent") ?? "",
    "x-request-id": requestId,
  };
}
