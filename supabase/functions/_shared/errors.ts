// The error envelope every function and the gateway answer with:
// { "error": { "code", "message", "details"? }, "request_id" }. Codes are stable: docs/errors.md.
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details?: unknown;
  /** Headers the answer carries (e.g. Allow with a 405). */
  readonly headers?: Record<string, string>;
  constructor(status: number, code: string, message: string, details?: unknown, headers?: Record<string, string>) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  request_id: string;
}

export function errorBody(code: string, message: string, requestId: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details }, request_id: requestId };
}

export function errorResponse(
  status: number,
  code: string,
  message: string,
  requestId: string,
  init: { details?: unknown; headers?: HeadersInit } = {},
): Response {
  const headers = new Headers(init.headers);
  headers.set("x-request-id", requestId);
  return Response.json(errorBody(code, message, requestId, init.details), { status, headers });
}
