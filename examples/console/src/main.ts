// The console's shell: a screen per hash route, the signed-in user, and the page an invitation
// link lands on (/accept-invitation?token=…).
import "./style.css";
import { startApp } from "./app.ts";
import { readable } from "./errors.ts";
import { acceptScreen, orgsScreen } from "./screens/orgs.ts";
import { authScreen } from "./screens/auth.ts";
import { filesScreen } from "./screens/files.ts";
import { inboxScreen } from "./screens/inbox.ts";
import { jobsScreen } from "./screens/jobs.ts";
import { keysScreen } from "./screens/keys.ts";
import { usageScreen } from "./screens/usage.ts";
import { el, say } from "./ui.ts";

const SCREENS = {
  auth: ["Account", authScreen],
  orgs: ["Organizations", orgsScreen],
  files: ["Files", filesScreen],
  inbox: ["Inbox", inboxScreen],
  usage: ["Usage", usageScreen],
  jobs: ["Jobs", jobsScreen],
  keys: ["API keys", keysScreen],
} as const;
type ScreenName = keyof typeof SCREENS;

const app = await startApp();
const screen = document.getElementById("screen")!;

async function show() {
  const name = (location.hash.replace(/^#\//, "") || "auth") as ScreenName;
  const { data } = await app.supabase.auth.getSession();
  document.getElementById("who")!.textContent = data.session ? `Signed in as ${data.session.user.email}` : "Not signed in";
  document.getElementById("nav")!.replaceChildren(
    ...Object.entries(SCREENS).map(([key, [label]]) =>
      el("a", { href: `#/${key}`, ...(key === name ? { "aria-current": "page" } : {}) }, label)
    ),
  );
  screen.replaceChildren();
  say("");
  try {
    const token = new URLSearchParams(location.search).get("token");
    if (location.pathname === "/accept-invitation" && token) return await acceptScreen(app, screen, token);
    const [, render] = SCREENS[name] ?? SCREENS.auth;
    if (!data.session && name !== "auth") return await authScreen(app, screen);
    await render(app, screen);
  } catch (e) {
    say(await readable(e));
  }
}

window.addEventListener("hashchange", () => void show());
await show();
