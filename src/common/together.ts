/**
 * How the servers of a fleet keep in step: turns, so that runs sharing servers take their locks
 * in one order, and a barrier, so that none commits before every one is ready to.
 */

/** One place in a sequence: wait for it, then end it so the next may go. Ending twice is harmless. */
export interface Turn {
  wait(): Promise<void>;
  end(): void;
}

/** `count` turns taken one after another: turn k may start once turn k - 1 ended. */
export function turnsInSequence(count: number): Turn[] {
  const turns: Turn[] = [];
  let previous: Promise<void> = Promise.resolve();
  for (let k = 0; k < count; k++) {
    let end = (): void => undefined;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const before = previous;
    turns.push({ wait: () => before, end });
    previous = ended;
  }
  return turns;
}

/** What a barrier's waiters fail with when another member failed before it was ready. */
export class BarrierBroken extends Error {
  constructor(cause: unknown) {
    super('another server of the fleet failed before it was ready', { cause });
  }
}

/**
 * Where `count` members wait until all are ready. Each arrives with a value; once all have, the
 * values are checked together (`agree` returns an error to fail every member with) and every
 * member goes on. A member that fails instead of arriving breaks the barrier: every member
 * waiting, or arriving later, fails with BarrierBroken.
 */
export class Barrier<T> {
  private readonly values: T[] = [];
  private readonly waiting: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private outcome: { ok: true } | { ok: false; error: Error } | undefined;

  constructor(
    private readonly count: number,
    private readonly agree: (values: T[]) => Error | undefined = () => undefined,
  ) {}

  arrive(value: T): Promise<void> {
    if (this.outcome) return this.outcome.ok ? Promise.resolve() : Promise.reject(this.outcome.error);
    this.values.push(value);
    const waited = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.values.length === this.count) {
      const disagreement = this.agree(this.values);
      this.settle(disagreement ? { ok: false, error: disagreement } : { ok: true });
    }
    return waited;
  }

  /** Whether a member failed: the others need not go on towards it. */
  get broken(): boolean {
    return this.outcome !== undefined && !this.outcome.ok;
  }

  /** A member failed before it was ready: nobody goes on. */
  fail(reason: unknown): void {
    if (this.outcome || reason instanceof BarrierBroken) return;
    this.settle({ ok: false, error: new BarrierBroken(reason) });
  }

  private settle(outcome: { ok: true } | { ok: false; error: Error }): void {
    this.outcome = outcome;
    for (const waiter of this.waiting.splice(0)) {
      if (outcome.ok) waiter.resolve();
      else waiter.reject(outcome.error);
    }
  }
}
