// Which unhandled rejections the worker survives: postgres.js's lost connections only.
import { describe, expect, it } from "vitest";
import { isLostConnection } from "../../worker/src/process-errors.ts";

describe("isLostConnection", () => {
  it("is true for connections closed, refused or ended by a Postgres shutdown", () => {
    for (const code of ["CONNECTION_CLOSED", "ECONNREFUSED", "57P01", "57P03"]) {
      expect(isLostConnection(Object.assign(new Error("x"), { code }))).toBe(true);
    }
  });
  it("is false for anything else: SQL errors, plain errors, non-errors", () => {
    expect(isLostConnection(Object.assign(new Error("x"), { code: "23505" }))).toBe(false);
    expect(isLostConnection(new Error("boom"))).toBe(false);
    expect(isLostConnection(null)).toBe(false);
    expect(isLostConnection("CONNECTION_CLOSED")).toBe(false);
  });
});
