// Headless Chromium (Debian's, driven by playwright-core) and a static site on its own origin, so
// a test sees what a browser app sees: CORS, preflights, localStorage sessions. The page loads
// supabase-js's own UMD bundle, unmodified.
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Flags a closed network needs: no background calls to Google that fail at every start. */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: npm start installs Debian's chromium`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

const SUPABASE_UMD = path.resolve("node_modules/@supabase/supabase-js/dist/umd/supabase.js");

/** A static site for one test: `/` is `html`, `/supabase.js` is supabase-js's browser bundle. */
export async function serveSite(html: string): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === "/supabase.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      fs.createReadStream(SUPABASE_UMD).pipe(res);
    } else if (req.url === "/" || req.url?.startsWith("/?")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  // localhost, not 127.0.0.1: another host and port than the API's, so every call is cross-origin
  return {
    origin: `http://localhost:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Everything the page's network or console said went wrong (CORS refusals show up here, as a
 * failed request and a console error). With `answersExpected`, HTTP error answers the test expects
 * (a 401 is still an answer the app could read) are left out.
 */
export function watchFailures(page: Page, { answersExpected = false } = {}): string[] {
  const failures: string[] = [];
  page.on("requestfailed", (r) => failures.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (answersExpected && m.text().startsWith("Failed to load resource: the server responded with a status of")) return;
    failures.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => failures.push(`page: ${e.message}`));
  return failures;
}
