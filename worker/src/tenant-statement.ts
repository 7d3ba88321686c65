// One statement in a job's tenant context, in one round trip, with prepared plans. The context
// and the statement go to Postgres as one extended-protocol pipeline closed by a single Sync:
//   Parse/Bind/Execute  select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), ...
//   Parse/Bind/Describe/Execute  <the statement, values as bind parameters>
//   Sync
// Everything before a Sync is one implicit transaction: the context (transaction-local settings,
// as PostgREST sets them) holds for the statement and ends with it at the Sync, and if setting it
// fails Postgres skips the statement. Both are named prepared statements on their connection
// (parsed once per connection, planned once when Postgres settles on a generic plan): on the
// stack's machine, planning an RLS statement costs about as much as running it, and the policies'
// helpers are evaluated at execution with each job's claims, never baked into a plan.
//
// postgres.js cannot send two statements before one Sync, so this uses node-postgres (`pg`, which
// pg-boss runs on) through its Submittable interface (how pg-cursor and pg-query-stream drive the
// protocol): its own pool of connections, parsing rows with pg's type parsers.
import crypto from "node:crypto";
import pg from "pg";
import { REQUEST_CONTEXT_SQL, requestContextValues } from "../../supabase/functions/_shared/request-context.ts";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import { tenantContext, type TenantJob } from "./tenant-context.ts";

const log = createLogger("worker");

/** What a statement's values may be: bind parameters, serialized as node-postgres does. */
export type StatementValue =
  | string
  | number
  | bigint
  | boolean
  | Date
  | null
  | readonly (string | number | boolean | null)[]
  | { [key: string]: unknown };

/** Connections for tenantStatement. */
export function createStatementPool(databaseUrl: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, application_name: "saas-backend-worker-statements" });
  // An idle connection that dies (a Postgres restart) is dropped from the pool; the next statement opens another.
  pool.on("error", (e) => log.warn("idle statement connection lost", { error: e.message }));
  return pool;
}

/**
 * A tagged template that runs its statement in the job's context and resolves to its rows:
 * `await tenantStatement(pool, tenant)<{ id: string }[]>\`select id from public.files where id = ${id}\``.
 * Values are bind parameters ($1, $2, ...): a value written inside quotes in the template is not a
 * parameter, and Postgres refuses the statement (it then takes fewer parameters than it is given).
 */
export function tenantStatement(pool: pg.Pool, job: TenantJob) {
  const context = requestContextValues(tenantContext(job));
  return async <T extends readonly object[] = Record<string, unknown>[]>(
    strings: TemplateStringsArray,
    ...values: StatementValue[]
  ): Promise<T> => {
    const at = values.indexOf(undefined as never);
    if (at >= 0) throw new TypeError(`tenantStatement: value ${at + 1} is undefined (pass null for SQL NULL)`);
    // Serialized before anything is sent: a value that cannot be (a circular object) fails here,
    // not half-way through writing the pipeline.
    const parameters = values.map((v) => prepareValue(v));
    const statement = statementOf(strings);
    const client = await pool.connect();
    // A checked-out client that loses its connection emits 'error'; unheard, that would be an
    // uncaught exception taking the whole worker down. The statement itself fails through the query.
    let lost: Error | undefined;
    const onError = (e: Error) => (lost = e);
    client.on("error", onError);
    try {
      const result = await new Promise<pg.QueryResult>((resolve, reject) =>
        client.query(
          new StatementInContext(
            context,
            statement,
            parameters,
            (e, r) => (e ? reject(e) : resolve(r!)),
          ) as unknown as pg.Submittable,
        )
      );
      return result.rows as unknown as T;
    } catch (e) {
      // A Postgres error in the statement leaves the connection usable; anything else, or a
      // FATAL one (the server ending the session), may not.
      if (!(e instanceof pg.DatabaseError) || e.severity === "FATAL" || e.severity === "PANIC") lost ??= e as Error;
      throw e;
    } finally {
      client.removeListener("error", onError);
      client.release(lost);
    }
  };
}

/** A template's statement: its text with $1, $2, ... and a name from the text, made once per call site. */
const statements = new WeakMap<TemplateStringsArray, { name: string; text: string }>();
function statementOf(strings: TemplateStringsArray) {
  let statement = statements.get(strings);
  if (!statement) {
    const text = strings.reduce((sql, piece, i) => `${sql}$${i}${piece}`);
    statement = { name: `tenant_${crypto.createHash("sha256").update(text).digest("hex").slice(0, 32)}`, text };
    statements.set(strings, statement);
  }
  return statement;
}

const CONTEXT_STATEMENT = { name: "tenant_context_v1", text: REQUEST_CONTEXT_SQL };

/** Named statements each connection has parsed (known from a reply that could only follow a successful Parse). */
const parsedOn = new WeakMap<object, Set<string>>();

type Connection = {
  parse(q: { name: string; text: string }): void;
  bind(q: { statement: string; values: readonly unknown[] }): void;
  describe(q: { type: "P"; name: string }): void;
  execute(q: { portal: string }): void;
  close(q: { type: "S"; name: string }): void;
  sync(): void;
  stream: { cork?: () => void; uncork?: () => void };
};
type Field = { name: string; dataTypeID: number; format: string };

// node-postgres's own result builder (type parsers) and parameter serialization (Date, Buffer,
// arrays, JSON: what client.query sends); not in @types/pg.
const internals = pg as unknown as {
  Result: new () => {
    rows: Record<string, unknown>[];
    addFields(fields: Field[]): void;
    parseRow(values: unknown[]): Record<string, unknown>;
    addCommandComplete(msg: unknown): void;
  };
  utils: { prepareValue(value: unknown): unknown };
};
const PgResult = internals.Result;
const prepareValue = internals.utils.prepareValue;

/** The context and the statement as node-postgres's Submittable (client.query(submittable)). */
class StatementInContext {
  readonly #context: readonly string[];
  readonly #statement: { name: string; text: string };
  readonly #values: readonly unknown[];
  readonly callback: (e: Error | null, r?: pg.QueryResult) => void;
  readonly #result = new PgResult();
  #parsed!: Set<string>;
  #contextDone = false;
  #done = false;

  constructor(
    context: readonly string[],
    statement: { name: string; text: string },
    values: readonly unknown[],
    callback: (e: Error | null, r?: pg.QueryResult) => void,
  ) {
    this.#context = context;
    this.#statement = statement;
    this.#values = values;
    this.callback = callback;
  }

  submit(connection: Connection) {
    this.#parsed = parsedOn.get(connection) ?? new Set();
    parsedOn.set(connection, this.#parsed);
    connection.stream.cork?.();
    try {
      for (const [statement, values] of [[CONTEXT_STATEMENT, this.#context], [this.#statement, this.#values]] as const) {
        if (!this.#parsed.has(statement.name)) {
          // After an error we cannot tell whether a Parse took effect; closing a statement that
          // does not exist is not an error, so close and parse again.
          connection.close({ type: "S", name: statement.name });
          connection.parse(statement);
        }
        connection.bind({ statement: statement.name, values });
        if (statement === this.#statement) connection.describe({ type: "P", name: "" });
        connection.execute({ portal: "" });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(msg: { fields: Field[] }) {
    this.#parsed.add(this.#statement.name);
    this.#result.addFields(msg.fields);
  }

  handleDataRow(msg: { fields: unknown[] }) {
    if (this.#contextDone) this.#result.rows.push(this.#result.parseRow(msg.fields));
  }

  handleCommandComplete(msg: unknown) {
    if (!this.#contextDone) {
      this.#contextDone = true;
      this.#parsed.add(CONTEXT_STATEMENT.name);
      return;
    }
    this.#parsed.add(this.#statement.name);
    this.#result.addCommandComplete(msg);
  }

  handleEmptyQuery() {
    this.#parsed.add(this.#statement.name);
  }

  handleError(e: Error) {
    if (this.#done) return;
    this.#done = true;
    this.callback(e);
  }

  handleReadyForQuery() {
    if (this.#done) return;
    this.#done = true;
    this.callback(null, this.#result as unknown as pg.QueryResult);
  }

  handlePortalSuspended() {}
  handleCopyInResponse(connection: Connection & { sendCopyFail(m: string): void }) {
    connection.sendCopyFail("tenantStatement does not take COPY FROM STDIN");
  }
  handleCopyData() {}
}
