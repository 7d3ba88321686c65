// How a stored file is answered, as the Storage API answers downloads: its ETag, `If-None-Match`
// answered 304 when it still matches, one byte range (`Range: bytes=a-b`, `a-`, `-n`) answered
// 206 with `Content-Range`, 416 for a range past the end. A range the server does not read
// (several ranges, another unit, bad syntax) gets the whole file, as RFC 9110 allows.
import type http from "node:http";

export interface StoredFile {
  path: string;
  contentType: string;
  size: number;
  etag?: string;
}

export type FilePlan =
  | { status: 200 | 206; headers: Record<string, string | number>; start: number; end: number }
  | { status: 304 | 416; headers: Record<string, string | number> };

function rangeOf(header: string, size: number): { start: number; end: number } | "unsatisfiable" | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  return end < start ? null : { start, end };
}

export function planFileReply(req: http.IncomingMessage, file: StoredFile): FilePlan {
  const base: Record<string, string | number> = { "accept-ranges": "bytes", ...(file.etag ? { etag: file.etag } : {}) };
  const ifNoneMatch = req.headers["if-none-match"];
  if (file.etag && typeof ifNoneMatch === "string") {
    const tags = ifNoneMatch.split(",").map((t) => t.trim().replace(/^W\//, ""));
    if (tags.includes("*") || tags.includes(file.etag)) return { status: 304, headers: base };
  }
  const range = typeof req.headers.range === "string" && file.size > 0 ? rangeOf(req.headers.range, file.size) : null;
  if (range === "unsatisfiable") return { status: 416, headers: { ...base, "content-range": `bytes */${file.size}` } };
  if (range) {
    return {
      status: 206,
      headers: {
        ...base,
        "content-range": `bytes ${range.start}-${range.end}/${file.size}`,
        "content-length": range.end - range.start + 1,
      },
      start: range.start,
      end: range.end,
    };
  }
  return { status: 200, headers: { ...base, "content-length": file.size }, start: 0, end: Math.max(0, file.size - 1) };
}
