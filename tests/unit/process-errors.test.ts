// Which unhandled rejections the worker survives: postgres.js's lost connections only.
import { describe, expect, it } from "vitest";
import { isLostConnection, isWriteAfterClose } from "../../worker/src/process-errors.ts";

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

describe("isWriteAfterClose", () => {
  it("is postgres.js writing to a released socket, and nothing else", () => {
    const e = new TypeError("Cannot read properties of null (reading 'write')");
    e.stack = `${e.message}\n    at Immediate.nextWrite (/x/node_modules/postgres/src/connection.js:255:22)`;
    expect(isWriteAfterClose(e)).toBe(true);
    const other = new TypeError("Cannot read properties of null (reading 'write')");
    other.stack = `${other.message}\n    at somewhere (/x/app.ts:1:1)`;
    expect(isWriteAfterClose(other)).toBe(false);
    expect(isWriteAfterClose(new Error("reading 'write'"))).toBe(false);
  });
});
