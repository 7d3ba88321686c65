// The app's state: the runtime config the stack serves (/config.json), one supabase-js client
// with the publishable key and the generated Database types, and the user's active organization.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type { Database } from "../../../supabase/functions/_shared/database.types.ts";

export interface ConsoleConfig {
  apiUrl: string;
  publishableKey: string;
  mqttWsUrl: string;
}

export interface App {
  config: ConsoleConfig;
  supabase: SupabaseClient<Database>;
  /** The active organization (the token's org_id claim), if any. */
  orgId(): Promise<string | null>;
  /** The token's claims for the active organization: what the screens offer (policies still decide). */
  claims(): Promise<Claims>;
}

export interface Claims {
  org_id: string | null;
  org_role: "owner" | "admin" | "teacher" | "student" | null;
  permissions: string[];
  sub: string | null;
}

export const RANK = { student: 1, teacher: 2, admin: 3, owner: 4 } as const;
export type Role = keyof typeof RANK;

export async function startApp(): Promise<App> {
  const config = (await (await fetch("/config.json")).json()) as ConsoleConfig;
  // a recovery link signs the person in; remember to ask for the new password (the fragment is
  // gone once supabase-js has read it)
  if (/[#&]type=recovery\b/.test(location.hash)) sessionStorage.setItem("recovering", "1");
  const supabase = createClient<Database>(config.apiUrl, config.publishableKey, {
    // implicit: the links Auth mails (confirmation, invitation, recovery) bring the session in the fragment
    auth: { flowType: "implicit", detectSessionInUrl: true, persistSession: true, autoRefreshToken: true },
  });
  const app: App = {
    config,
    supabase,
    async orgId() {
      return (await app.claims()).org_id;
    },
    async claims() {
      const { data } = await supabase.auth.getSession();
      const token = data.session?.access_token;
      if (!token) return { org_id: null, org_role: null, permissions: [], sub: null };
      const c = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return {
        org_id: typeof c.org_id === "string" ? c.org_id : null,
        org_role: typeof c.org_role === "string" ? c.org_role : null,
        permissions: Array.isArray(c.permissions) ? c.permissions : [],
        sub: typeof c.sub === "string" ? c.sub : null,
      };
    },
  };
  return app;
}
