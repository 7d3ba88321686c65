// Reads configuration from the environment in Deno and in Node alike, validated with zod, so a
// missing or malformed variable fails loudly at start instead of at first use.
import { z } from "zod";

export function readEnv(name: string): string | undefined {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.Deno?.env?.get) return g.Deno.env.get(name) ?? undefined;
  return g.process?.env?.[name];
}

export function loadEnv<T extends z.ZodRawShape>(shape: T): z.infer<z.ZodObject<T>> {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) raw[key] = readEnv(key);
  const parsed = z.object(shape).safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid environment: ${problems}`);
  }
  return parsed.data;
}
