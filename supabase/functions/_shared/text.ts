// Text Postgres cannot store: text and jsonb refuse the NUL character, and jsonb refuses a UTF-16
// surrogate that is not half of a pair (JSON.parse accepts both). A request carrying either is a
// client's mistake, to be refused with a reason before any SQL, not a 500 after it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(s: string): boolean {
  return !s.includes("\u0000") && !LONE_SURROGATE.test(s);
}

/** The path of the first string (value or key) in `value` Postgres cannot store, or null. */
export function findUnstorableText(value: unknown, path: string[] = []): string | null {
  if (typeof value === "string") return isStorableText(value) ? null : path.join(".") || "(value)";
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorableText(value[i], [...path, String(i)]);
      if (found !== null) return found;
    }
    return null;
  }
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (!isStorableText(k)) return [...path, "(a key)"].join(".");
      const found = findUnstorableText(v, [...path, k]);
      if (found !== null) return found;
    }
  }
  return null;
}

export const UNSTORABLE_TEXT = "contains a NUL character or an unpaired surrogate, which cannot be stored";
