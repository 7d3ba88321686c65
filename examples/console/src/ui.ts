// Small DOM helpers. User data only ever goes in as text (textContent), never as HTML.
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
export function say(text: string, ok = false) {
  message().textContent = text;
  message().className = ok ? "ok" : "";
}
