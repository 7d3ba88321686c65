// Small DOM helpers. User data only ever goes in as text (textContent), never as HTML.
import { explain, type Explained } from "./errors.ts";

type Child = Node | string | number | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") node.addEventListener(k.replace(/^on/, ""), v);
    // through the CSSOM, which the page's Content-Security-Policy allows (a style attribute it refuses)
    else if (k === "style" && typeof v === "string") node.style.cssText = v;
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false) node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

/** A labelled input, accessible by its label. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement) {
  input.id ||= `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return el("div", {}, el("label", { for: input.id }, label), " ", input);
}

export function table(headers: string[], rows: Child[][]) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))),
  );
}

const message = () => document.getElementById("message")!;
/** The page-wide line, for what belongs to no single control (a screen that could not load). */
export function say(text: string, ok = false) {
  message().textContent = text;
  message().className = ok ? "ok" : "";
}

/**
 * A feedback line that sits next to the control it is about; each new message replaces the last,
 * so a success never stands beside an older error.
 */
export function note(label?: string) {
  return el("p", { class: "note", role: "status", "aria-live": "polite", ...(label ? { "aria-label": label } : {}) });
}

export function tell(where: HTMLElement, what: string | Explained, kind: "ok" | "error" | "info" = "info") {
  const { text, hint } = typeof what === "string" ? { text: what, hint: "" } : what;
  where.className = `note ${kind}`;
  where.replaceChildren(text, ...(hint ? [" ", el("span", { class: "hint" }, hint)] : []));
}

/** Shows an error's sentence and hint next to its control. */
export async function fail(where: HTMLElement, error: unknown, overrides?: Record<string, Explained>) {
  tell(where, await explain(error, overrides), "error");
}

/** Runs `fn` with the button disabled, so it cannot be pressed twice. */
export async function busy<T>(button: HTMLButtonElement, fn: () => Promise<T>): Promise<T> {
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

export function bytes(n: number | null | undefined) {
  const v = Number(n ?? 0);
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  let x = v;
  while (x >= 1000 && i < units.length - 1) (x /= 1000), i++;
  return i === 0 ? `${v} ${v === 1 ? "byte" : "bytes"}` : `${x.toFixed(x < 10 ? 1 : 0)} ${units[i]}`;
}

export function when(iso: string | null | undefined) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A <time> for a moment: readable, with the exact value for machines. */
export function time(iso: string | null | undefined) {
  return iso ? el("time", { datetime: iso }, when(iso)) : "";
}

/**
 * For a screen that draws itself again on clicks, searches and live updates: each draw takes a
 * ticket before it asks the API, and paints only if no later draw was started meanwhile, so a slow
 * answer (the first page, asked when live updates connected) never paints over a newer one (the
 * page a person just moved to).
 */
export function newestOnly() {
  let issued = 0;
  return () => {
    const mine = ++issued;
    return () => mine === issued;
  };
}
