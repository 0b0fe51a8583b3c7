// The fault campaign (harness/chaos.ts) and its invariant checker (harness/invariants.ts):
// - the checker catches damage made by hand that only it looks for (a stray file under images/,
//   a file that downloads with other bytes), and takes a file a commit under way moved in as
//   accounted for;
// - a short seeded campaign of 30 faults of every kind but the link stall (a minute each; the
//   long campaign in docs/reliability.md has them) finds no violation. CHAOS_SEED replays another.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, runBundle } from '../harness/action.js';
import { FAULT_KINDS, runCampaign } from '../harness/chaos.js';
import { makeSplitContainerImage } from '../harness/images.js';
import { checkInvariants } from '../harness/invariants.js';
import { startRegistry, type Registry } from '../harness/registry.js';

describe('the invariant checker', () => {
  let registry: Registry;
  let work: string;
  beforeAll(async () => {
    registry = await startRegistry();
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-invariants-'));
    for (const variant of ['a', 'b']) {
      const image = await makeSplitContainerImage(path.join(work, variant), { os: 'inv', variant });
      expectExit(await runBundle(inputsFor(registry, image, { aliases: `inv-${variant}:latest` })), 0);
    }
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const onServer = async (command: string) => {
    const result = await registry.ssh(`set -e; cd ${registry.simplestreamsDir}; ${command}`);
    if (result.code !== 0) throw new Error(result.stderr);
  };

  it('finds nothing wrong in what the action published, asking the incus client and nginx', async () => {
    expect((await checkInvariants(registry)).violations).toEqual([]);
  }, 60_000);

  it('catches a stray file under images/, and not one a commit under way moved in', async () => {
    await onServer(
      'printf x > images/half.squashfs.partial && mkdir -p .lxc-publish/staging/k && printf x > images/moved.squashfs && echo moved.squashfs > .lxc-publish/staging/k/moved',
    );
    expect((await checkInvariants(registry, { allowed: ['leftover-staging'] })).violations).toEqual([
      'a file under images/ that nothing accounts for (partial or stray): "half.squashfs.partial"',
    ]);
    await onServer('rm -r images/half.squashfs.partial images/moved.squashfs .lxc-publish/staging/k');
  }, 60_000);

  it('catches a file that downloads with other bytes than the index gives', async () => {
    await onServer(
      'f=$(ls images/*.squashfs | head -1) && cp $f /tmp/inv.keep && printf y | dd of=$f bs=1 seek=10 conv=notrunc status=none',
    );
    const { violations } = await checkInvariants(registry);
    expect(violations.some((violation) => violation.startsWith('wrong-sha256: '))).toBe(true);
    expect(
      violations.some((violation) => / downloads as [0-9]+ bytes [0-9a-f]{64}, the index says /.test(violation)),
    ).toBe(true);
    await onServer('f=$(ls images/*.squashfs | head -1) && cp /tmp/inv.keep $f && rm /tmp/inv.keep');
    expect((await checkInvariants(registry)).violations).toEqual([]);
  }, 60_000);
});

describe('a short fault campaign', () => {
  it('injects 30 faults at random moments of random runs and finds no violation', async () => {
    const seed = Number(process.env['CHAOS_SEED'] ?? 20261206);
    const lines: string[] = [];
    const report = await runCampaign({
      seed,
      faults: 30,
      maxMinutes: 5,
      maxStalls: 0,
      log: (line) => lines.push(line),
    });
    if (report.violations.length > 0) throw new Error(`seed ${seed}:\n${lines.join('\n')}`);
    const injected = FAULT_KINDS.reduce((total, kind) => total + report.faults[kind], 0);
    expect(injected).toBeGreaterThanOrEqual(30);
    // Several kinds came up (which ones land depends on how fast the runs are), and runs both
    // failed and went through.
    expect(FAULT_KINDS.filter((kind) => report.faults[kind] > 0).length).toBeGreaterThanOrEqual(4);
    expect(report.operations.completed).toBeGreaterThan(0);
    expect(report.operations.failed).toBeGreaterThan(0);
  }, 420_000);
});
