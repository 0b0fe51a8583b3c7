// The link cut while the new index is on its way (registry/commit.ts, server/commit.sh): at 50
// random moments of the commit, the proxy carrying the connection is killed (both sockets
// destroyed, not a clean SSH close). The live index is always one of the two whole indexes, never
// a part of one; SHA256SUMS always matches it; every file it names exists; the run that was cut
// says the connection dropped; and a publish afterwards goes through.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, runBundle } from '../harness/action.js';
import { openRegistry } from '../harness/connect.js';
import { sleep } from '../harness/exec.js';
import { makeSplitContainerImage } from '../harness/images.js';
import { startProxy } from '../harness/proxy.js';
import { commitRunsOn, startRegistry, type Registry } from '../harness/registry.js';
import { seedReleases } from '../harness/seed.js';
import { missingFiles } from '../harness/tree.js';
import { commit } from '../../src/registry/commit.js';
import { holdRegistryLock } from '../../src/registry/lock.js';
import { sha256Sums } from '../../src/simplestreams/checksums.js';
import type { ImagesIndex } from '../../src/simplestreams/images-index.js';

const TRIALS = 50;
/** Client→server bytes per second: the payload (about 450 kB) takes about half a second. */
const UPLINK = 1 << 20;
let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-cut-'));
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

const sha = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');
const file = (...parts: string[]) => path.join(registry.simplestreamsDir, ...parts);

/** Waits until no commit runs on the server any more (the script goes on after the cut). */
async function untilNoCommit(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await registry.ssh(commitRunsOn(registry))).code !== 0) return;
    await sleep(50);
  }
  throw new Error('a commit still runs 30 s after the cut');
}

describe('a link cut during the commit', () => {
  it(`never leaves a part of an index live (${TRIALS} cuts at random moments)`, async () => {
    const seeded = await seedReleases(registry, { count: 400, variant: 'cut', aliasPrefix: 'cut:' });
    // Two whole indexes to go back and forth between: all of it, and all but the first 100 releases.
    const whole = JSON.parse(seeded.json) as ImagesIndex;
    const smaller = JSON.parse(seeded.json) as ImagesIndex;
    const dropped = Object.keys(smaller.products).slice(0, 100);
    for (const key of dropped) delete smaller.products[key];
    const retired = seeded.files.slice(0, 200);
    const texts = new Map([
      [sha(JSON.stringify(whole)), 'whole'],
      [sha(JSON.stringify(smaller)), 'smaller'],
    ]);
    // The seeded index, made live once by the action: its SHA256SUMS is written.
    const first = await openRegistry(registry);
    try {
      const held = await holdRegistryLock(first, 30);
      const current = { text: held.liveText, sumsSha256: held.sumsSha256 };
      await commit(first, { lock: held.lock, live: whole, changed: true, current, retired: [], done: [] });
      await held.lock.release();
    } finally {
      first.close();
    }
    const outcomes = { committed: 0, unchanged: 0 };
    const errors = new Set<string>();
    for (let trial = 0; trial < TRIALS; trial++) {
      const before = await fsp.readFile(file('streams/v1/images.json'));
      const next = texts.get(sha(before)) === 'smaller' ? whole : smaller;
      const proxy = await startProxy({ targetPort: registry.sshPort, upBytesPerSecond: UPLINK });
      const connected = await openRegistry(registry, { port: proxy.port });
      try {
        const held = await holdRegistryLock(connected, 30);
        const committing = commit(connected, {
          lock: held.lock,
          live: next,
          changed: true,
          current: { text: held.liveText, sumsSha256: held.sumsSha256 },
          retired: next === smaller ? retired : [],
          done: [],
        });
        const outcome = committing.then(
          () => 'done',
          (error: Error) => error.message,
        );
        await sleep(Math.random() * 900);
        await proxy.close();
        const said = await outcome;
        if (said !== 'done') errors.add(said.replace(/ \(.*?\)\. /, ' (…). '));
      } finally {
        connected.close();
        await proxy.close();
      }
      await untilNoCommit();
      const live = await fsp.readFile(file('streams/v1/images.json'));
      const which = texts.get(sha(live));
      if (which === undefined) throw new Error(`trial ${trial}: images.json is no whole index (${live.length} bytes)`);
      if (sha(live) === sha(before)) outcomes.unchanged++;
      else outcomes.committed++;
      const parsed = JSON.parse(live.toString()) as ImagesIndex;
      expect(await fsp.readFile(file('images/SHA256SUMS'), 'utf8')).toBe(sha256Sums(parsed));
      expect(await missingFiles(registry)).toEqual([]);
    }
    console.log(
      `${TRIALS} cuts: ${outcomes.committed} committed whole, ${outcomes.unchanged} left the index as it was`,
    );
    // The cuts fell before, during and after the payload: both outcomes happened.
    expect(outcomes.committed).toBeGreaterThan(0);
    expect(outcomes.unchanged).toBeGreaterThan(0);
    // A run that was cut says so: the connection dropped, and nothing half-done is live.
    for (const message of errors) expect(message).toMatch(/^The SSH connection to the server dropped while: /);
    // The index that was live before the last commit is kept, to roll back by hand.
    const previous = await fsp.readFile(file('.lxc-publish/previous/images.json'));
    expect(texts.get(sha(previous))).toBeDefined();
    const published = await runBundle(
      inputsFor(registry, await makeSplitContainerImage(path.join(work, 'after'), { variant: 'after' })),
    );
    expectExit(published, 0);
    expect(await missingFiles(registry)).toEqual([]);
  }, 600_000);
});
