// Bytes of uploads in flight, per caller. An upload is written to a temporary file before its row
// is committed, so without a bound one caller (a publishable key is enough for a bucket whose
// policy lets anon insert) could fill the disk Postgres shares by holding many large uploads open.
export class OverBudget extends Error {}

export class UploadBudget {
  private inFlight = new Map<string, number>();
  readonly perCaller: number;

  constructor(perCaller: number) {
    this.perCaller = perCaller;
  }

  /** Counts `n` more bytes for `caller`; throws OverBudget (counting nothing) past the bound. */
  take(caller: string, n: number) {
    const now = (this.inFlight.get(caller) ?? 0) + n;
    if (now > this.perCaller) throw new OverBudget(`more than ${this.perCaller} bytes of uploads in flight`);
    this.inFlight.set(caller, now);
  }

  release(caller: string, n: number) {
    const left = (this.inFlight.get(caller) ?? 0) - n;
    if (left <= 0) this.inFlight.delete(caller);
    else this.inFlight.set(caller, left);
  }

  held(caller: string) {
    return this.inFlight.get(caller) ?? 0;
  }
}
