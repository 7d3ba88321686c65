// A statement's values written into its text as SQL literals, for the simple query protocol
// (which has no parameters). Escaping is pg's escapeLiteral (quotes doubled, backslashes doubled
// under E''), so a value is always exactly one literal whatever it holds. Every value is a quoted
// literal of type unknown, as an untyped parameter is, so Postgres infers its type from where it
// stands (cast where that is ambiguous: `${ids}::uuid[]`); a number is quoted too, so a negative
// one can never meet a `-` before it and start a comment.
import { escapeLiteral } from "pg";

export type Scalar = string | number | bigint | boolean | null | Date;
/** What a value may be: a scalar, an array of scalars (ARRAY[...]), or an object (as JSON text). */
export type LiteralValue = Scalar | readonly Scalar[] | { readonly [key: string]: unknown };

export class LiteralSqlError extends Error {
  override name = "LiteralSqlError";
}

/** The statement of a tagged template, its values as literals. Its text must be one statement. */
export function literalSql(strings: readonly string[], values: readonly LiteralValue[]): string {
  strings.forEach(assertCode);
  let text = strings[0];
  values.forEach((v, i) => text += literal(v) + strings[i + 1]);
  return text;
}

/**
 * Each piece of the statement's own text must begin and end in plain SQL: a value written where a
 * quoted string, a quoted identifier, a dollar quote or a comment is open would not be one
 * literal any more (`'%${v}%'` or `-- ${v}` with a newline in v lets the rest of v run as SQL),
 * and a `;` outside quotes could end the statement and run the next one outside the context the
 * statements before it set. Conservative: backslashes in quoted text and dollar quotes are refused
 * rather than interpreted.
 */
function assertCode(piece: string) {
  let state: "code" | "'" | '"' | "--" | "/*" = "code";
  let depth = 0; // Postgres nests block comments
  for (let i = 0; i < piece.length; i++) {
    const c = piece[i], next = piece[i + 1];
    if (state === "code") {
      if (c === "'" || c === '"') state = c;
      else if (c === "-" && next === "-") (state = "--"), i++;
      else if (c === "/" && next === "*") (state = "/*"), (depth = 1), i++;
      else if (c === ";") throw new LiteralSqlError("the statement text may not contain ';' outside quotes");
      else if (c === "$" && !/[0-9]/.test(next ?? "")) throw new LiteralSqlError("dollar quotes are not supported");
    } else if (state === "'" || state === '"') {
      if (c === "\\") throw new LiteralSqlError("backslashes in quoted statement text are not supported");
      if (c === state) state = "code"; // a doubled quote closes and opens again
    } else if (state === "--") {
      if (c === "\n" || c === "\r") state = "code";
    } else if (c === "/" && next === "*") depth++, i++;
    else if (c === "*" && next === "/") (--depth === 0 && (state = "code")), i++;
  }
  if (state !== "code") {
    throw new LiteralSqlError(
      `a value cannot stand inside ${
        { "'": "a quoted string", '"': "a quoted identifier", "--": "a comment", "/*": "a comment" }[state]
      }: write it as a value of its own`,
    );
  }
}

function literal(v: LiteralValue): string {
  if (Array.isArray(v)) return v.length ? `ARRAY[${v.map(scalar).join(", ")}]` : "'{}'";
  if (v !== null && typeof v === "object" && !(v instanceof Date)) return text(JSON.stringify(v));
  return scalar(v as Scalar);
}

function scalar(v: Scalar): string {
  if (v === null) return "NULL";
  // (as postgres.js refuses undefined: a missing value is a bug, not a NULL)
  if (v === undefined) throw new LiteralSqlError("a value is undefined");
  if (typeof v === "string") return text(v);
  if (typeof v === "boolean") return v ? "'true'" : "'false'";
  if (typeof v === "bigint") return text(v.toString());
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new LiteralSqlError(`not a finite number: ${v}`);
    return text(String(v));
  }
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new LiteralSqlError("not a valid date");
    return text(v.toISOString());
  }
  throw new LiteralSqlError(`cannot write a ${typeof v} as a SQL literal`);
}

function text(s: string): string {
  // Postgres text cannot hold NUL (a parameter would be refused too).
  if (s.includes("\0")) throw new LiteralSqlError("a value may not contain the NUL character");
  return escapeLiteral(s);
}
