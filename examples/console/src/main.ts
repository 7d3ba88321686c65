// The console's shell: a screen per hash route, the signed-in user, and the page an invitation
// link lands on (/accept-invitation?token=…).
import "./style.css";
import { startApp } from "./app.ts";
import { readable } from "./errors.ts";
import { acceptScreen, orgsScreen } from "./screens/orgs.ts";
import { auditScreen } from "./screens/audit.ts";
import { authScreen } from "./screens/auth.ts";
import { filesScreen } from "./screens/files.ts";
import { inboxScreen } from "./screens/inbox.ts";
import { jobsScreen } from "./screens/jobs.ts";
import { keysScreen } from "./screens/keys.ts";
import { sharesScreen } from "./screens/shares.ts";
import { usageScreen } from "./screens/usage.ts";
import { el, say } from "./ui.ts";

// A screen is offered to whoever holds one of its permissions (the token's claims); the database
// still decides every read and write.
const SCREENS = {
  auth: ["Account", authScreen, []],
  orgs: ["Organizations", orgsScreen, []],
  files: ["Files", filesScreen, ["files.read"]],
  shares: ["Sharing", sharesScreen, ["files.write"]],
  inbox: ["Inbox", inboxScreen, []],
  usage: ["Usage", usageScreen, ["analytics.read"]],
  jobs: ["Jobs", jobsScreen, ["jobs.manage", "data.export"]],
  keys: ["API keys", keysScreen, ["api_keys.manage"]],
  audit: ["Audit log", auditScreen, ["audit.read"]],
} as const;
type ScreenName = keyof typeof SCREENS;

const app = await startApp();
const screen = document.getElementById("screen")!;

// The screen on show, and the signal that tells it the person has left it (it closes its live
// connection). Each show() draws into a view of its own: a screen still loading when the person
// moves on keeps drawing into its view, which is no longer on the page.
let leaving = new AbortController();

async function show() {
  leaving.abort();
  const left = (leaving = new AbortController()).signal;
  const name = (location.hash.replace(/^#\//, "") || "auth") as ScreenName;
  const { data } = await app.supabase.auth.getSession();
  const claims = await app.claims();
  if (left.aborted) return;
  const offered = (key: ScreenName) => {
    const needs = SCREENS[key][2] as readonly string[];
    return key === "auth" || (!!data.session && (!needs.length || needs.some((p) => claims.permissions.includes(p))));
  };
  document.getElementById("who")!.textContent = data.session ? `Signed in as ${data.session.user.email}` : "Not signed in";
  const activeOrg = document.getElementById("active-org")!;
  activeOrg.replaceChildren();
  if (claims.org_id) {
    const { data: org } = await app.supabase.from("organizations").select("name").eq("id", claims.org_id).maybeSingle();
    if (left.aborted) return;
    if (org) activeOrg.replaceChildren(`${org.name} · ${claims.org_role ?? ""} `, el("a", { href: "#/orgs" }, "Switch"));
  }
  document.getElementById("nav")!.replaceChildren(
    ...(Object.keys(SCREENS) as ScreenName[]).filter((key) => key === "auth" || offered(key)).map((key) =>
      el("a", { href: `#/${key}`, ...(key === name ? { "aria-current": "page" } : {}) }, SCREENS[key][0])
    ),
  );
  const view = el("div", { class: "view" });
  screen.replaceChildren(view);
  say("");
  try {
    const token = new URLSearchParams(location.search).get("token");
    if (location.pathname === "/accept-invitation" && token) return await acceptScreen(app, view, token);
    const [, render] = SCREENS[name] ?? SCREENS.auth;
    if (!data.session && name !== "auth") return await authScreen(app, view);
    if (SCREENS[name] && !offered(name)) {
      return void view.append(
        el("h2", {}, SCREENS[name][0]),
        el("p", {}, "Your role does not include this screen. Ask an administrator of your organization if you need it."),
      );
    }
    await render(app, view, left);
  } catch (e) {
    if (!left.aborted) say(await readable(e));
  }
}

window.addEventListener("hashchange", () => void show());
await show();
