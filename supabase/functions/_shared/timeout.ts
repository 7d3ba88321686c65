// A bound on how long to wait for a service (Redis, the broker, a health check) or for a job's
// attempt: past it, or when the signal aborts, the wait ends with an error naming what did not
// answer; the work itself may still finish later, unobserved.
export function withTimeout<T>(work: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const expired = () => reject(new Error(`${what} did not answer in ${ms} ms`));
    if (signal?.aborted) return expired();
    const timer = setTimeout(expired, ms);
    signal?.addEventListener("abort", expired, { once: true });
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", expired);
    });
  });
}
