// The file types the `files` bucket accepts, with the extensions a name of that type may have:
// a name whose extension belongs to another type is refused before anything is stored.
export const FILE_TYPES: Record<string, readonly string[]> = {
  "image/png": ["png"],
  "image/jpeg": ["jpg", "jpeg"],
  "image/gif": ["gif"],
  "image/webp": ["webp"],
  "application/pdf": ["pdf"],
  "text/plain": ["txt", "text", "log"],
  "text/csv": ["csv"],
  "text/markdown": ["md", "markdown"],
  "application/json": ["json"],
  "application/zip": ["zip"],
  "audio/mpeg": ["mp3"],
  "video/mp4": ["mp4", "m4v"],
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ["docx"],
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ["xlsx"],
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": ["pptx"],
};

/** Types whose bytes carry no signature: recognised as UTF-8 text without NUL bytes. */
export const TEXT_TYPES = new Set(["text/plain", "text/csv", "text/markdown", "application/json"]);

export function extensionOf(name: string): string | null {
  const m = /\.([A-Za-z0-9]{1,10})$/.exec(name);
  return m ? m[1].toLowerCase() : null;
}

export function extensionFits(name: string, mime: string): boolean {
  const ext = extensionOf(name);
  return ext !== null && (FILE_TYPES[mime] ?? []).includes(ext);
}
