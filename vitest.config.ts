import { defineConfig } from "vitest/config";
import { isLostConnection, isWriteAfterClose } from "./worker/src/process-errors.ts";

export default defineConfig({
  test: {
    // postgres.js drops the promise of the array-type fetch it runs first on every new connection,
    // so a connection opened while a test restarts Postgres surfaces as an unhandled rejection no
    // code can catch (porsager/postgres#1192, #1223). Only that one is not reported: a lost
    // connection during that fetch; and postgres.js's own write to a socket its closed connection
    // released. The worker process treats both the same way (worker/src/process-errors.ts).
    onUnhandledError(error) {
      const query = (error as { query?: unknown }).query;
      if (isLostConnection(error) && typeof query === "string" && query.includes("typarray")) return false;
      if (isWriteAfterClose(error)) return false;
    },
    projects: [
      { test: { name: "unit", include: ["tests/unit/**/*.test.ts"], environment: "node" } },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["tests/helpers/global-setup.ts"],
          // One file at a time: the lifecycle test kills and revives services the others use.
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
