// The console is built into dist/ and served by the stack (dev/platform/runtime/static-site.ts).
// The shared realtime code (topics, envelopes) is imported from the functions' _shared folder.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, target: "es2022" },
  server: { fs: { allow: ["../.."] } },
});
