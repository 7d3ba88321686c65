// The worker's batched log writes: the lines of one event-loop turn go out in one write, in
// order, errors to stderr; flushLogWrites (the worker calls it on exit) writes what is pending at once.
import { afterEach, describe, expect, it, vi } from "vitest";
import { batchLogWrites, createLogger, flushLogWrites } from "../../supabase/functions/_shared/log.ts";

afterEach(() => vi.restoreAllMocks());

describe("batched log writes", () => {
  it("one write per turn, every line in order, nothing lost at exit", async () => {
    const out = vi.spyOn(console, "log").mockImplementation(() => {});
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    const log = createLogger("test").child({ correlation_id: "c1" });
    log.info("line 0"); // before batching: written at once
    expect(out).toHaveBeenCalledTimes(1);
    batchLogWrites();
    for (let i = 1; i <= 3; i++) log.info(`line ${i}`);
    log.error("broke");
    expect(out).toHaveBeenCalledTimes(1);
    await new Promise((r) => setTimeout(r, 5));
    expect(out).toHaveBeenCalledTimes(2);
    const lines = String(out.mock.calls[1][0]).split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.msg, l.correlation_id])).toEqual([["line 1", "c1"], ["line 2", "c1"], ["line 3", "c1"]]);
    expect(JSON.parse(String(err.mock.calls[0][0]))).toMatchObject({ level: "error", msg: "broke" });
    log.warn("at exit");
    flushLogWrites();
    expect(JSON.parse(String(out.mock.calls[2][0]))).toMatchObject({ level: "warn", msg: "at exit" });
  });
});
