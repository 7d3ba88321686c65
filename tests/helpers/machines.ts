// What the machine tests need beside organizations and members (organizations.ts): API keys
// made as a member makes them (create_api_key in the member's request context), and calls as a
// machine makes them: the project's publishable key in `apikey`, the organization's key in
// `x-api-key`; from a chosen local source address when a test must not share its refusals with the rest of the suite
// (the key gate counts refused keys per address).
import crypto from "node:crypto";
import http from "node:http";
import type postgres from "postgres";
import { API_URL, secrets } from "./stack.ts";

export const FUNCTIONS_URL = `${API_URL}/functions/v1`;

/** Runs SQL as a signed-in member, as PostgREST would for their request. */
export function asMember<T>(admin: postgres.Sql, userId: string, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return admin.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    return fn(tx);
  }) as Promise<T>;
}

/** A key made by `creator` (create_api_key: the scopes must be theirs), and optionally its MQTT topic patterns. */
export async function createKey(
  admin: postgres.Sql,
  org: string,
  creator: string,
  scopes: string[],
  opts: { name?: string; mqttTopics?: string[] } = {},
) {
  return asMember(admin, creator, async (tx) => {
    const [k] = await tx<{ api_key_id: string; api_key: string; key_prefix: string }[]>`
      select api_key_id, api_key, key_prefix from public.create_api_key(${org}, ${opts.name ?? "test key"}, ${scopes})`;
    if (opts.mqttTopics) await tx`select public.set_api_key_mqtt_topics(${k.api_key_id}, ${opts.mqttTopics})`;
    return { id: k.api_key_id, key: k.api_key, prefix: k.key_prefix };
  });
}

export const machineHeaders = (key: string, extra: Record<string, string> = {}) => ({
  apikey: secrets().publishableKey,
  "x-api-key": key,
  "content-type": "application/json",
  ...extra,
});

export interface Answer {
  status: number;
  headers: Headers;
  body: string;
  // the JSON answer, as loosely typed as tests read it
  json: any;
}

export interface MachineCall {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** The local address to send from (freshAddress()): its own count of refused keys. */
  from?: string;
}

/** A machine's call of a function (`org-api/files`, `analytics-ingest`, ...). */
export async function callAsMachine(key: string, path: string, init: MachineCall = {}): Promise<Answer> {
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  const body = init.body === undefined ? undefined : JSON.stringify(init.body);
  const headers = machineHeaders(key, init.headers);
  const { status, answerHeaders, text } = init.from
    ? await sendFrom(init.from, method, `${FUNCTIONS_URL}/${path}`, headers, body)
    : await fetch(`${FUNCTIONS_URL}/${path}`, { method, headers, body }).then(async (r) => ({
      status: r.status,
      answerHeaders: r.headers,
      text: await r.text(),
    }));
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch { /* not JSON */ }
  return { status, headers: answerHeaders, body: text, json };
}

/** A random loopback address other than 127.0.0.1: a source of its own for the per-address counts. */
export const freshAddress = () => `127.${1 + crypto.randomInt(250)}.${crypto.randomInt(256)}.${1 + crypto.randomInt(250)}`;

function sendFrom(address: string, method: string, target: string, headers: Record<string, string>, body?: string) {
  const url = new URL(target);
  return new Promise<{ status: number; answerHeaders: Headers; text: string }>((resolve, reject) => {
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      method,
      localAddress: address,
      headers,
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        const answerHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") answerHeaders.set(k, v);
        resolve({ status: res.statusCode ?? 0, answerHeaders, text });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Waits, when the calendar minute (the limiter's window) ends within `marginMs`, for the next one. */
export async function clearOfMinuteEnd(marginMs = 10_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 200));
}
