import { describe, expect, it } from '@jest/globals';
import { Barrier, BarrierBroken, turnsInSequence } from '../../../src/common/together.js';

const settled = async <T>(promise: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> => {
  const marker = Symbol('pending');
  const outcome = await Promise.race([
    promise.then(
      () => 'resolved' as const,
      () => 'rejected' as const,
    ),
    new Promise<typeof marker>((resolve) => setImmediate(() => resolve(marker))),
  ]);
  return outcome === marker ? 'pending' : outcome;
};

describe('turnsInSequence', () => {
  it('lets each turn start only once the one before ended', async () => {
    const [first, second, third] = turnsInSequence(3) as [
      ReturnType<typeof turnsInSequence>[number],
      ReturnType<typeof turnsInSequence>[number],
      ReturnType<typeof turnsInSequence>[number],
    ];
    expect(await settled(first.wait())).toBe('resolved');
    expect(await settled(second.wait())).toBe('pending');
    first.end();
    first.end(); // twice is harmless
    expect(await settled(second.wait())).toBe('resolved');
    expect(await settled(third.wait())).toBe('pending');
    second.end();
    expect(await settled(third.wait())).toBe('resolved');
  });
});

describe('Barrier', () => {
  it('holds every member until all arrived, then lets them all go', async () => {
    const barrier = new Barrier<string>(3);
    const waits = [barrier.arrive('a'), barrier.arrive('a')];
    expect(await Promise.all(waits.map(settled))).toEqual(['pending', 'pending']);
    waits.push(barrier.arrive('a'));
    expect(await Promise.all(waits.map(settled))).toEqual(['resolved', 'resolved', 'resolved']);
  });

  it('fails every member with what agree says when the values disagree', async () => {
    const barrier = new Barrier<string>(2, (values) =>
      new Set(values).size > 1 ? new Error(`differ: ${values.join(', ')}`) : undefined,
    );
    const results = await Promise.allSettled([barrier.arrive('a'), barrier.arrive('b')]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(String((results[0] as PromiseRejectedResult).reason)).toContain('differ: a, b');
  });

  it('breaks for everyone, waiting or arriving later, when a member fails instead of arriving', async () => {
    const barrier = new Barrier<string>(3);
    const waiting = barrier.arrive('a');
    const cause = new Error('disk full');
    expect(barrier.broken).toBe(false);
    barrier.fail(cause);
    expect(barrier.broken).toBe(true);
    await expect(waiting).rejects.toBeInstanceOf(BarrierBroken);
    const late = barrier.arrive('a');
    await expect(late).rejects.toMatchObject({ cause });
    // The waiters' own failures passed back in change nothing.
    barrier.fail(new BarrierBroken(cause));
    await expect(barrier.arrive('a')).rejects.toMatchObject({ cause });
  });
});
