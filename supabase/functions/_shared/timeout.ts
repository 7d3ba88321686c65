// A bound on how long to wait for a service (Redis, the broker, a health check): past it, the
// wait ends with an error naming what did not answer; the work itself may still finish later.
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`${what} did not answer in ${ms} ms`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
