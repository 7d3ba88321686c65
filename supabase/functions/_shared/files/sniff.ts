// What a file really is, from its bytes (file-type reads the signatures), and whether that is
// what the uploader declared. Text has no signature: it is text when it decodes as UTF-8 and has
// no NUL byte, and JSON when it also parses.
import { fileTypeFromBuffer } from "file-type";
import { TEXT_TYPES } from "./mime.ts";

export async function detectMime(bytes: Uint8Array, declared: string): Promise<string> {
  const found = await fileTypeFromBuffer(bytes);
  if (found) return found.mime;
  if (TEXT_TYPES.has(declared) && isText(bytes)) {
    if (declared !== "application/json") return declared;
    try {
      JSON.parse(new TextDecoder().decode(bytes));
      return declared;
    } catch {
      return "text/plain";
    }
  }
  return "application/octet-stream";
}

export function isText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
