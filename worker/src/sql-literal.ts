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
  // The text is the code's own; a `;` in it could end the statement and run the next one outside
  // whatever the statements before it set (values cannot: theirs are inside literals).
  if (strings.some((s) => s.includes(";"))) throw new LiteralSqlError("the statement text may not contain ';'");
  let text = strings[0];
  values.forEach((v, i) => text += literal(v) + strings[i + 1]);
  return text;
}

function literal(v: LiteralValue): string {
  if (Array.isArray(v)) return v.length ? `ARRAY[${v.map(scalar).join(", ")}]` : "'{}'";
  if (v !== null && typeof v === "object" && !(v instanceof Date)) return text(JSON.stringify(v));
  return scalar(v as Scalar);
}

function scalar(v: Scalar): string {
  if (v === null || v === undefined) return "NULL";
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
