// The pure parts of file handling: extension checks, type sniffing, personal data.
import { describe, expect, it } from "vitest";
import { extensionFits } from "../../supabase/functions/_shared/files/mime.ts";
import { findPii, hasPii } from "../../supabase/functions/_shared/files/pii.ts";
import { detectMime } from "../../supabase/functions/_shared/files/sniff.ts";

const PNG = new Uint8Array([
  0x89,
  0x50,
  0x4e,
  0x47,
  0x0d,
  0x0a,
  0x1a,
  0x0a,
  0,
  0,
  0,
  13,
  0x49,
  0x48,
  0x44,
  0x52,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  1,
  8,
  2,
  0,
  0,
  0,
]);
const text = (s: string) => new TextEncoder().encode(s);

describe("extensions", () => {
  it("accept only the declared type's extensions, case-insensitively", () => {
    expect(extensionFits("Report.PDF", "application/pdf")).toBe(true);
    expect(extensionFits("photo.jpeg", "image/jpeg")).toBe(true);
    expect(extensionFits("photo.png.exe", "image/png")).toBe(false);
    expect(extensionFits("noext", "text/plain")).toBe(false);
    expect(extensionFits("a.txt", "application/x-unknown")).toBe(false);
  });
});

describe("sniffing", () => {
  it("reads signatures, and recognises text and JSON by their bytes", async () => {
    expect(await detectMime(PNG, "image/png")).toBe("image/png");
    expect(await detectMime(PNG, "text/plain")).toBe("image/png");
    expect(await detectMime(text("hello\n"), "text/plain")).toBe("text/plain");
    expect(await detectMime(text('{"a":1}'), "application/json")).toBe("application/json");
    expect(await detectMime(text("{not json"), "application/json")).toBe("text/plain");
    expect(await detectMime(new Uint8Array([0x68, 0, 0x69]), "text/plain")).toBe("application/octet-stream");
    expect(await detectMime(new Uint8Array([0xc3, 0x28]), "text/csv")).toBe("application/octet-stream");
  });
});

describe("personal data", () => {
  it("finds e-mail addresses, phone numbers and national ids", () => {
    expect(findPii("write to a.b@example.org")).toMatchObject({ email: 1 });
    expect(findPii("call +1 415 555 0100 or (020) 7946 0958")).toMatchObject({ phone: 2 });
    expect(findPii("SSN 123-45-6789, NI AB 12 34 56 C")).toMatchObject({ national_id: 2 });
  });

  it("leaves ordinary text alone", () => {
    for (const s of ["Chapter 12, pages 30-45.", "Score: 98.5 of 100", "2026-11-22", "version 1.2.3"]) {
      expect(hasPii(findPii(s)), s).toBe(false);
    }
  });
});
