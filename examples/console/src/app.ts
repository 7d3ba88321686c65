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
}

export async function startApp(): Promise<App> {
  const config = (await (await fetch("/config.json")).json()) as ConsoleConfig;
  const supabase = createClient<Database>(config.apiUrl, config.publishableKey, {
    // implicit: the links Auth mails (confirmation, invitation, recovery) bring the session in the fragment
    auth: { flowType: "implicit", detectSessionInUrl: true, persistSession: true, autoRefreshToken: true },
  });
  return {
    config,
    supabase,
    async orgId() {
      const { data } = await supabase.auth.getSession();
      const token = data.session?.access_token;
      if (!token) return null;
      const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof claims.org_id === "string" ? claims.org_id : null;
    },
  };
}
