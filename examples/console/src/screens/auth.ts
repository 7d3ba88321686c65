// Sign up (confirmed by the mailed link), sign in, recover a password, set a new one, sign out.
import type { App } from "../app.ts";
import { busy, el, fail, field, note, tell } from "../ui.ts";

export async function authScreen(app: App, root: HTMLElement) {
  const { data } = await app.supabase.auth.getSession();
  if (data.session) {
    const password = el("input", { type: "password", autocomplete: "new-password", required: true, minlength: "6" });
    const result = note();
    const org = await app.orgId();
    // a recovery link signs the person in: this is where they choose the new password
    const recovering = sessionStorage.getItem("recovering") === "1";
    root.append(
      el("h2", {}, "Account"),
      el("p", {}, "Signed in as ", data.session.user.email ?? ""),
      recovering ? el("p", { class: "note info" }, "Choose a new password below.") : "",
      org ? "" : el(
        "div",
        { class: "onboarding" },
        el("h3", {}, "Get started"),
        el("p", {}, "You are not in an organization yet."),
        el(
          "p",
          {},
          el("a", { href: "#/orgs" }, "Create your school"),
          " — or open the invitation link you were mailed to join one.",
        ),
      ),
      el(
        "form",
        {
          "aria-label": "Change password",
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const { error } = await app.supabase.auth.updateUser({ password: password.value });
            if (error) return fail(result, error);
            sessionStorage.removeItem("recovering");
            tell(result, "Your password was changed.", "ok");
          },
        },
        field("New password", password),
        el("button", { type: "submit" }, "Change password"),
        result,
      ),
      el("button", {
        type: "button",
        onclick: async () => {
          await app.supabase.auth.signOut({ scope: "global" });
          location.hash = "#/auth";
          location.reload();
        },
      }, "Sign out everywhere"),
    );
    return;
  }
  const email = el("input", { type: "email", autocomplete: "email", required: true });
  const password = el("input", { type: "password", autocomplete: "current-password", required: true });
  const redirect = `${location.origin}/`;
  const result = note();
  const act = (fn: () => Promise<{ error: unknown }>, ok: string) => async (e: Event) => {
    e.preventDefault();
    const button = (e instanceof SubmitEvent ? e.submitter : e.currentTarget) as HTMLButtonElement;
    await busy(button, async () => {
      const { error } = await fn();
      if (error) return fail(result, error);
      tell(result, ok, "ok");
      if (ok === "Signed in.") location.reload();
    });
  };
  root.append(
    el("h2", {}, "Sign in"),
    el(
      "form",
      {
        "aria-label": "Sign in",
        onsubmit: act(() => app.supabase.auth.signInWithPassword({ email: email.value, password: password.value }), "Signed in."),
      },
      field("E-mail", email),
      field("Password", password),
      el("button", { type: "submit" }, "Sign in"),
      el("button", {
        type: "button",
        onclick: act(
          () =>
            app.supabase.auth.signUp({ email: email.value, password: password.value, options: { emailRedirectTo: redirect } }),
          "Check your mail: follow the link to confirm your address.",
        ),
      }, "Sign up"),
      el("button", {
        type: "button",
        onclick: act(
          () => app.supabase.auth.resetPasswordForEmail(email.value, { redirectTo: `${location.origin}/#/auth` }),
          "If the address has an account, a reset link is on its way.",
        ),
      }, "Forgot password"),
      result,
    ),
  );
}
