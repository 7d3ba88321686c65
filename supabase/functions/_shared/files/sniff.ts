// What a file really is, from its bytes (file-type reads the signatures), and whether that is
// what the uploader declared. Text has no signature: it is text when it decodes as UTF-8 and has
// no NUL byte, and JSON when it also parses.
import { fileTypeFromBuffer } from "file-type";
import { TEXT_TYPES } from "./mime.ts";

/**
 * `text`: the bytes decoded by decodeText, when the caller has them already (a file is decoded
 * once: each decoding of a large file is another copy of it in memory).
 */
export async function detectMime(
  bytes: Uint8Array,
  declared: string,
  text: string | null = TEXT_TYPES.has(declared) ? decodeText(bytes) : null,
): Promise<string> {
  const found = await fileTypeFromBuffer(bytes);
  if (found) return found.mime;
  if (TEXT_TYPES.has(declared) && text !== null) {
    if (declared !== "application/json") return declared;
    try {
      JSON.parse(text);
      return declared;
    } catch {
      return "text/plain";
    }
  }
  return "application/octet-stream";
}

/** The bytes as text when they are text (UTF-8 without a NUL byte), otherwise null. */
export function decodeText(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}
