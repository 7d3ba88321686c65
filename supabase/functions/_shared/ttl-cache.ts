// Answers a function keeps in memory for a while (an API key's verification, a member's or an
// organization's tier), each asked once however many requests want it at the same moment: with 50
// calls in flight, an answer that expires was otherwise asked for by every call that found it
// gone, all at once. A failed question is not kept (the next request asks again); oldest entries
// go first past maxEntries, so unknown keys cannot grow the map without bound.

export interface TtlCache<V> {
  /** The kept answer for key, the one being asked for, or load()'s (kept ttlMs from now). */
  get(key: string, load: () => Promise<V>): Promise<V>;
  /** Whether key has an answer that has not expired (or one being asked for). */
  holds(key: string): boolean;
  delete(key: string): void;
}

export function ttlCache<V>(opts: { ttlMs: number; maxEntries: number; now?: () => number }): TtlCache<V> {
  const now = opts.now ?? Date.now;
  const entries = new Map<string, { until: number; value: Promise<V> }>();
  const fresh = (key: string) => {
    const hit = entries.get(key);
    return hit && hit.until > now() ? hit : undefined;
  };
  return {
    get(key, load) {
      const hit = fresh(key);
      if (hit) return hit.value;
      const value = load();
      entries.delete(key); // re-inserted last: the Map's order is the order of age
      entries.set(key, { until: now() + opts.ttlMs, value });
      if (entries.size > opts.maxEntries) entries.delete(entries.keys().next().value!);
      value.catch(() => {
        if (entries.get(key)?.value === value) entries.delete(key);
      });
      return value;
    },
    holds: (key) => fresh(key) !== undefined,
    delete: (key) => void entries.delete(key),
  };
}
