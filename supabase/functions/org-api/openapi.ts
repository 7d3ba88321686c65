// The machine API's description (OpenAPI 3.1), made from the zod schemas the functions parse with:
// org-api's route table, and the requests analytics-ingest, file-upload and member-invite accept
// (imported from those functions, so the description is what they parse, not a copy). Served by
// org-api at GET /openapi.json; tests/integration/machine-api.test.ts sends each documented
// request to the live functions and holds their answers to the documented schemas.
import { z } from "zod";
import { Event, EVENT_SCHEMAS, IngestRequest, IngestResponse, LIMITS } from "../analytics-ingest/events.ts";
import { EVENTS_SCOPE } from "../analytics-ingest/ingest.ts";
import { UploadRequest, UploadResponse } from "../file-upload/upload.ts";
import { InviteRequest } from "../member-invite/invite.ts";
import { FUNCTION_NAME } from "./router.ts";
import { type RouteDef, ROUTES } from "./routes.ts";

/** member-invite's answer (invite.ts makes it; the test holds it to this). */
export const InviteResponse = z.object({
  invitation_id: z.uuid(),
  expires_at: z.iso.datetime({ offset: true }),
  mail: z.enum(["invite", "magiclink"]).describe("the mail Auth sent: an invitation to a new account, or a magic link"),
}).meta({ id: "InvitationSent" });

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  request_id: z.string(),
}).meta({ id: "Error" });

/** An event as analytics-ingest checks each one: the envelope, and the properties of its type. */
const DocumentedEvent = z.union(
  Object.entries(EVENT_SCHEMAS).map(([type, properties]) =>
    Event.extend({ type: z.literal(type), properties }).meta({ id: `Event_${type.replace(".", "_")}` })
  ) as unknown as [z.ZodType, ...z.ZodType[]],
);
const DocumentedIngestRequest = IngestRequest.extend({
  events: z.array(DocumentedEvent).min(1).max(LIMITS.eventsPerBatch).describe(
    "each event is checked on its own: the valid ones are kept, the others refused with a reason",
  ),
}).meta({ id: "IngestRequest" });

type Json = Record<string, unknown>;
type Io = "input" | "output";

/** Collects named schemas into components and points at them; zod's long format regexes left out. */
class Components {
  readonly schemas: Record<string, Json> = {};
  ref(schema: z.ZodType, io: Io): Json {
    const raw = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Json;
    const defs = (raw.$defs ?? {}) as Record<string, Json>;
    delete raw.$defs;
    for (const [name, def] of Object.entries(defs)) this.add(name, def);
    const id = raw.id as string | undefined;
    if (id) {
      this.add(id, raw);
      return { $ref: `#/components/schemas/${id}` };
    }
    return this.clean(raw);
  }
  private add(name: string, def: Json) {
    const cleaned = this.clean(def);
    const had = this.schemas[name];
    if (had && JSON.stringify(had) !== JSON.stringify(cleaned)) throw new Error(`openapi: two schemas named ${name}`);
    this.schemas[name] = cleaned;
  }
  private clean(node: Json): Json {
    const walk = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(walk);
      if (v === null || typeof v !== "object") return v;
      const out: Json = {};
      for (const [k, x] of Object.entries(v as Json)) {
        if (k === "$schema" || k === "id") continue;
        if (k === "pattern" && typeof (v as Json).format === "string") continue;
        if (k === "$ref" && typeof x === "string") out[k] = x.replace("#/$defs/", "#/components/schemas/");
        else out[k] = walk(x);
      }
      return out;
    };
    return walk(node) as Json;
  }
}

const ERROR_STATUSES: Record<number, string> = {
  400: "The request does not match its schema (invalid_request, invalid_json, with details)",
  401: "No usable key: invalid_api_key, api_key_revoked, api_key_expired, api_key_in_browser, unauthorized",
  403: "missing_scope: the key does not hold the scope (or its creator no longer does); forbidden",
  429: "rate_limited: the key's or the organization's requests a minute are used up, or this address sent too many " +
    "refused keys; Retry-After says when to try again",
  503: "rate_limiter_unavailable: keys cannot be metered right now",
};

interface Operation {
  method: string;
  path: string;
  scope: string | null;
  summary: string;
  parameters: Json[];
  body?: z.ZodType;
  response: z.ZodType | null;
  status: number;
  errors: Record<number, string[]>;
}

function parametersOf(route: RouteDef, c: Components): Json[] {
  const out: Json[] = [];
  for (const [where, schema] of [["path", route.params], ["query", route.query]] as const) {
    if (!schema) continue;
    const json = c.ref(schema, "input");
    const props = (json.properties ?? {}) as Record<string, Json>;
    const required = new Set((json.required ?? []) as string[]);
    for (const [name, s] of Object.entries(props)) {
      const { description, ...rest } = s;
      out.push({ name, in: where, required: where === "path" || required.has(name), schema: rest, description });
    }
  }
  return out;
}

/** The OpenAPI 3.1 document for the machine API, served under `functionsUrl` (…/functions/v1). */
export function openApiDocument(functionsUrl: string): Json {
  const c = new Components();
  const operations: Operation[] = [
    {
      method: "POST",
      path: "/analytics-ingest",
      scope: EVENTS_SCOPE,
      summary: "Sends a batch of up to 500 events (the organization's events per minute apply; 429 when all were over)",
      parameters: [],
      body: DocumentedIngestRequest,
      response: IngestResponse,
      status: 200,
      errors: { 422: ["every event was refused (the body still lists why)"] },
    },
    {
      method: "POST",
      path: "/file-upload",
      scope: "files.write",
      summary: "Starts an upload: reserves the bytes and answers a signed URL to PUT the file to (then it is scanned; " +
        "file.ready or file.rejected follows on org/{org_id}/events)",
      parameters: [],
      body: UploadRequest,
      response: UploadResponse,
      status: 201,
      errors: {
        400: ["extension_mismatch", "invalid_name"],
        409: ["quota_exceeded"],
        413: ["file_too_large"],
        415: ["unsupported_type"],
      },
    },
    {
      method: "POST",
      path: "/member-invite",
      scope: "members.invite",
      summary: "Invites a person by e-mail (a key invites as its creator would, never above admin)",
      parameters: [],
      body: InviteRequest,
      response: InviteResponse,
      status: 201,
      errors: { 403: ["role_not_allowed"], 409: ["member_limit_reached", "already_a_member"], 502: ["mail_not_sent"] },
    },
    ...ROUTES.map((r) => ({
      method: r.method,
      path: `/${FUNCTION_NAME}${r.path}`,
      scope: r.scope,
      summary: r.summary,
      parameters: parametersOf(r, c),
      body: r.body,
      response: r.response,
      status: r.status,
      errors: r.errors ?? {},
    })),
  ];

  const error = c.ref(ErrorBody, "output");
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of operations) {
    const responses: Record<string, Json> = {
      [op.status]: op.response === null
        ? { description: "Done" }
        : { description: "OK", content: { "application/json": { schema: c.ref(op.response, "output") } } },
    };
    const statuses = new Set([...Object.keys(ERROR_STATUSES), ...Object.keys(op.errors)].map(Number));
    for (const status of [...statuses].sort()) {
      const codes = op.errors[status] ?? [];
      const base = ERROR_STATUSES[status];
      responses[status] = {
        description: [base, codes.length ? `also: ${codes.join(", ")}` : ""].filter(Boolean).join("; "),
        content: { "application/json": { schema: error } },
        ...(status === 429 ? { headers: { "Retry-After": { schema: { type: "integer" }, description: "seconds" } } } : {}),
      };
    }
    (paths[op.path] ??= {})[op.method.toLowerCase()] = {
      summary: op.summary,
      description: op.scope ? `Scope: \`${op.scope}\`.` : "Any live key.",
      "x-required-scope": op.scope,
      security: [{ publishableKey: [], apiKey: [] }],
      parameters: op.parameters,
      ...(op.body
        ? { requestBody: { required: true, content: { "application/json": { schema: c.ref(op.body, "input") } } } }
        : {}),
      responses,
    };
  }
  paths[`/${FUNCTION_NAME}/openapi.json`] = {
    get: {
      summary: "This description",
      security: [{ publishableKey: [] }],
      responses: { 200: { description: "OpenAPI 3.1", content: { "application/json": { schema: { type: "object" } } } } },
    },
  };

  return {
    openapi: "3.1.0",
    info: {
      title: "Machine API",
      version: "1",
      description: "What a server or device holding an organization's API key may call (docs/machines.md). Every call " +
        "sends the project's publishable key in `apikey` and the organization's key in `x-api-key`, never from a browser.",
    },
    servers: [{ url: functionsUrl }],
    components: {
      securitySchemes: {
        publishableKey: { type: "apiKey", in: "header", name: "apikey", description: "the project's publishable key" },
        apiKey: { type: "apiKey", in: "header", name: "x-api-key", description: "the organization's API key (sk_…)" },
      },
      schemas: c.schemas,
    },
    paths,
  };
}
