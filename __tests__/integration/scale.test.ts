// A registry with thousands of releases. Nothing the action sends to the server may grow with
// the registry on a command line: sshd hands the whole command to the shell as one argument,
// and Linux caps one argument at 128 KiB. index.json lists every product (one per release) and
// retention retires two files per dropped release, so both travel over stdin.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle } from '../harness/action.js';
import { makeSplitContainerImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { seedReleases } from '../harness/seed.js';

const RELEASES = 3500;
const LINE = 'Crynux:bookworm:big:amd64';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-scale-'));
});
afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function seed(): Promise<void> {
  await seedReleases(registry, { count: RELEASES, variant: 'big', aliasPrefix: 'crynux-big:' });
}

async function imagesJson(): Promise<{ products: Record<string, { versions: Record<string, unknown> }> }> {
  const text = await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8');
  return JSON.parse(text) as { products: Record<string, { versions: Record<string, unknown> }> };
}

it(`publishes into a registry of ${RELEASES} releases, then keep-versions 1 drops them all`, async () => {
  await seed();
  const first = await makeSplitContainerImage(path.join(work, 'first'), { variant: 'big', os: 'Crynux' });
  const published = await runBundle(inputsFor(registry, first, { aliases: 'crynux-big:latest' }));
  expect(published.stdout).not.toMatch(/Argument list too long/);
  expect(published.code).toBe(0);
  expect(Object.keys((await imagesJson()).products)).toHaveLength(RELEASES + 1);
  const indexJson = await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/index.json'), 'utf8');
  expect(indexJson.length).toBeGreaterThan(128 * 1024); // more than one argument may hold
  expect((JSON.parse(indexJson) as { index: { images: { products: string[] } } }).index.images.products).toHaveLength(
    RELEASES + 1,
  );

  const second = await makeSplitContainerImage(path.join(work, 'second'), { variant: 'big', os: 'Crynux' });
  const retained = await runBundle(inputsFor(registry, second, { aliases: 'crynux-big:latest', 'keep-versions': '1' }));
  expect(retained.code).toBe(0);
  const products = Object.keys((await imagesJson()).products);
  expect(products).toEqual([`${LINE}:${retained.outputs['serial']}`]);
  // Every file the index names exists; the dropped releases' files wait in the retired list.
  const retired = await fsp.readFile(path.join(registry.simplestreamsDir, '.lxc-publish/retired'), 'utf8');
  expect(retired.trim().split('\n')).toHaveLength(2 * (RELEASES + 1));
  expect(retired).toMatch(/^\d+ images\/[0-9a-f]{64}\.incus\.tar\.xz$/m);
  for (const line of retired.trim().split('\n').slice(0, 5)) {
    await expect(fsp.stat(path.join(registry.simplestreamsDir, line.split(' ')[1] ?? ''))).resolves.toBeDefined();
  }
  expect(await registry.incusList()).toEqual([expect.objectContaining({ fingerprint: second.fingerprint })]);
}, 300_000);
