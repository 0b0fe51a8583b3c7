// What the benches share: medians, timing, and emptying the loopback registry between runs.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Registry } from '../__tests__/harness/registry.js';

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

/** Runs `fn` and returns its wall time in seconds with its value. */
export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - started) / 1e9, value];
}

/** Empties the registry, as a fresh one. */
export async function resetRegistry(registry: Registry): Promise<void> {
  for (const dir of [registry.simplestreamsDir, registry.uploadDir]) {
    for (const entry of await fsp.readdir(dir)) await fsp.rm(path.join(dir, entry), { recursive: true, force: true });
  }
}
