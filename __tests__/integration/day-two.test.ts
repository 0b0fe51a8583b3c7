// Day-two operations without image files, through the committed sub-action bundles as the runner
// runs them: the alias sub-action rolls `latest` back to release A, the remove sub-action
// withdraws release B. The real Incus and LXD clients and daemons see the result; a publish
// running at the same time is serialised by the registry lock.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  connectionInputs,
  expectExit,
  type Inputs,
  inputsFor,
  runBundle,
  runEntry,
  startBundle,
} from '../harness/action.js';
import { imageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import { type DaemonKind, type Daemons, freshRemoteUrl, startDaemons, stopDaemonTest } from '../harness/daemons.js';
import {
  makeBootableImage,
  makeSplitContainerImage,
  simplestreamsSerial,
  type BootableImage,
} from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { missingFiles } from '../harness/tree.js';

const ALIAS = 'dist/alias/index.js';
const REMOVE = 'dist/remove/index.js';

let registry: Registry;
let daemons: Daemons;
let work: string;
let a: BootableImage;
let b: BootableImage;

const line = { os: 'Crynux', release: 'bookworm', variant: 'node', form: 'split' } as const;
const DAY = 86400;
const RELEASE_A = 1764547200; // 2025-12-01

beforeAll(async () => {
  registry = await startRegistry();
  daemons = await startDaemons(registry.caFile);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-day-two-'));
  a = await makeBootableImage(path.join(work, 'a'), { ...line, creationDate: RELEASE_A });
  b = await makeBootableImage(path.join(work, 'b'), { ...line, creationDate: RELEASE_A + 30 * DAY });
  for (const [image, aliases] of [
    [a, 'crynux-node:v2.6.0, crynux-node:latest'],
    [b, 'crynux-node:v2.7.0, crynux-node:latest'],
  ] as const) {
    expectExit(await runBundle(inputsFor(registry, image, { aliases })), 0);
  }
});
afterAll(() => stopDaemonTest({ daemons, registry, work }));

/** The sub-actions' inputs: the connection, as for a publish, and their own. */
function dayTwoInputs(own: Inputs): Inputs {
  return connectionInputs(registry, own);
}

/** Where an alias resolves, as the aliases-moved output names it. */
const holder = (image: BootableImage) => {
  const serial = simplestreamsSerial(image.creationDate);
  return { product: `Crynux:bookworm:node:amd64:${serial}`, serial, fingerprint: image.fingerprint };
};
const moved = (...moves: [alias: string, from: BootableImage | null, to: BootableImage | null][]) =>
  JSON.stringify(
    moves.map(([alias, from, to]) => ({
      alias,
      architecture: 'x86_64',
      type: 'container',
      from: from && holder(from),
      to: to && holder(to),
    })),
  );

/** What a change of the index rewrites, for a CDN to purge. */
const REWRITTEN = JSON.stringify(['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS']);

const imagesJson = () => fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8');

async function resolve(client: Client, ref: string): Promise<string | undefined> {
  const info = await imageInfo(registry, client, ref);
  return info.code === 0 ? parseImageInfo(info.stdout).fingerprint : undefined;
}

async function launchedImage(kind: DaemonKind, reference: string): Promise<string> {
  const daemon = daemons[kind];
  const remote = await daemon.addRemote(freshRemoteUrl(registry.httpsUrl));
  try {
    const name = await daemon.launch(`${remote}:${reference}`);
    try {
      return await daemon.configGet(name, 'volatile.base_image');
    } finally {
      await daemon.deleteInstance(name);
    }
  } finally {
    for (const image of await daemon.localImages()) await daemon.cliOk(['image', 'delete', image]);
    await daemon.cliOk(['remote', 'remove', remote]);
  }
}

/** The servers output of a step without mirrors: the one server, and what was done there to `image`. */
function oneServer(status: string, image: BootableImage, changedPaths: string): string {
  const { product, serial } = holder(image);
  return JSON.stringify([
    {
      name: `${registry.host}:${registry.sshPort}`,
      host: registry.host,
      port: registry.sshPort,
      status,
      fingerprint: image.fingerprint,
      product,
      serial,
      changedPaths: JSON.parse(changedPaths) as string[],
    },
  ]);
}

describe('the alias sub-action', () => {
  it('with dry-run prints the plan and changes nothing', async () => {
    const before = await imagesJson();
    const result = await runEntry({
      entry: ALIAS,
      inputs: dayTwoInputs({ fingerprint: a.fingerprint, aliases: 'crynux-node:latest', 'dry-run': 'true' }),
    });
    expectExit(result, 0);
    expect(result.outputs).toEqual({
      status: 'dry-run',
      fingerprint: a.fingerprint,
      'changed-paths': '[]',
      'aliases-moved': moved(['crynux-node:latest', b, a]),
      servers: oneServer('dry-run', a, '[]'),
    });
    expect(result.stdout).toMatch(/Would put crynux-node:latest \(amd64\) → [0-9a-f]{12}/);
    expect(await imagesJson()).toBe(before);
    expect(result.summary).toContain('Dry run: nothing was changed');
  });

  it('refuses an unknown image, listing what is published', async () => {
    const result = await runEntry({
      entry: ALIAS,
      inputs: dayTwoInputs({ fingerprint: 'f'.repeat(64), aliases: 'crynux-node:latest' }),
    });
    expectExit(result, 1);
    const error = result.stdout.split('\n').filter((l) => l.startsWith('::error'));
    expect(error).toHaveLength(1);
    expect(error[0]).toContain('check the fingerprint input');
    expect(error[0]).toContain(a.fingerprint.slice(0, 12));
    expect(error[0]).toContain(b.fingerprint.slice(0, 12));
  });

  it('rolls latest back to A while a publish runs: both clients and both daemons follow', async () => {
    const c = await makeSplitContainerImage(path.join(work, 'c'), { ...line, variant: 'other' });
    const publishing = startBundle(inputsFor(registry, c, { aliases: 'crynux-other:v1' }));
    const result = await runEntry({
      entry: ALIAS,
      inputs: dayTwoInputs({ fingerprint: a.fingerprint, aliases: 'crynux-node:latest' }),
    });
    expectExit(result, 0);
    expectExit(await publishing.done, 0);
    expect(result.outputs).toEqual({
      status: 'updated',
      fingerprint: a.fingerprint,
      'changed-paths': REWRITTEN,
      'aliases-moved': moved(['crynux-node:latest', b, a]),
      servers: oneServer('updated', a, REWRITTEN),
    });
    expect(result.summary).toContain('Aliases moved');
    for (const client of ['incus', 'lxc'] as const) {
      expect(await resolve(client, 'crynux-node:latest')).toBe(a.fingerprint);
      expect(await resolve(client, 'crynux-node:v2.7.0')).toBe(b.fingerprint);
      expect(await resolve(client, 'crynux-other:v1')).toBe(c.fingerprint);
    }
    for (const kind of ['incus', 'lxd'] as const)
      expect(await launchedImage(kind, 'crynux-node:latest')).toBe(a.fingerprint);
    // Again: nothing to change.
    const again = await runEntry({
      entry: ALIAS,
      inputs: dayTwoInputs({ fingerprint: 'crynux-node:v2.6.0', aliases: 'crynux-node:latest' }),
    });
    expectExit(again, 0);
    expect(again.outputs).toMatchObject({ status: 'unchanged', 'aliases-moved': '[]', 'changed-paths': '[]' });
  }, 240_000);
});

describe('the remove sub-action', () => {
  it('with dry-run changes nothing', async () => {
    const before = await imagesJson();
    const result = await runEntry({
      entry: REMOVE,
      inputs: dayTwoInputs({ fingerprint: b.fingerprint, 'dry-run': 'true' }),
    });
    expectExit(result, 0);
    expect(result.outputs).toEqual({
      status: 'dry-run',
      fingerprint: b.fingerprint,
      'changed-paths': '[]',
      'aliases-moved': moved(['crynux-node:v2.7.0', b, null]),
      servers: oneServer('dry-run', b, '[]'),
    });
    expect(await imagesJson()).toBe(before);
  });

  it('withdraws B while a publish runs: unlisted for both clients, v2.6.0 still A, every named file there', async () => {
    const d = await makeSplitContainerImage(path.join(work, 'd'), { ...line, variant: 'another' });
    const publishing = startBundle(inputsFor(registry, d, { aliases: 'crynux-another:v1' }));
    const result = await runEntry({ entry: REMOVE, inputs: dayTwoInputs({ fingerprint: b.fingerprint }) });
    expectExit(result, 0);
    expectExit(await publishing.done, 0);
    expect(result.outputs).toEqual({
      status: 'removed',
      fingerprint: b.fingerprint,
      'changed-paths': REWRITTEN,
      'aliases-moved': moved(['crynux-node:v2.7.0', b, null]),
      servers: oneServer('removed', b, REWRITTEN),
    });
    expect(result.stdout).toContain('Aliases that go with it: crynux-node:v2.7.0');
    expect(result.summary).toContain('Image removed from the index');
    for (const client of ['incus', 'lxc'] as const) {
      const listed = (client === 'incus' ? await registry.incusList() : await registry.lxcList()).map(
        (image) => image.fingerprint,
      );
      expect(listed).not.toContain(b.fingerprint);
      expect(listed).toEqual(expect.arrayContaining([a.fingerprint, d.fingerprint]));
      expect(await resolve(client, 'crynux-node:v2.6.0')).toBe(a.fingerprint);
      expect(await resolve(client, 'crynux-node:v2.7.0')).toBeUndefined();
    }
    expect(await missingFiles(registry)).toEqual([]);
    // B's files wait out the grace time for clients holding a cached index.
    const retired = await fsp.readFile(path.join(registry.simplestreamsDir, '.lxc-publish/retired'), 'utf8');
    expect(retired).toMatch(/images\/[0-9a-f]{64}\.squashfs/);
    for (const kind of ['incus', 'lxd'] as const) {
      expect(await launchedImage(kind, 'crynux-node:v2.6.0')).toBe(a.fingerprint);
    }
  }, 240_000);

  it('refuses to withdraw the release that holds latest without force, and with force warns and does it', async () => {
    const before = await imagesJson();
    // A dry run says the real run would refuse, and changes nothing.
    const dry = await runEntry({
      entry: REMOVE,
      inputs: dayTwoInputs({ fingerprint: 'crynux-node:latest', 'dry-run': 'true' }),
    });
    expectExit(dry, 0);
    expect(dry.stdout).toMatch(
      /^::warning title=lxc-publish%3A a followed alias goes::.*crynux-node:latest.*Without force: true the real run refuses this/m,
    );
    expect(await imagesJson()).toBe(before);
    const refused = await runEntry({ entry: REMOVE, inputs: dayTwoInputs({ fingerprint: 'crynux-node:latest' }) });
    expectExit(refused, 1);
    expect(refused.stdout).toMatch(
      /::error title=lxc-publish%3A check the force input::force: [0-9a-f]{64} holds crynux-node:latest, which hosts follow: .*Move the alias to another release first \(the alias sub-action\), or set force: true\./,
    );
    expect(await imagesJson()).toBe(before);
    const forced = await runEntry({
      entry: REMOVE,
      inputs: dayTwoInputs({ fingerprint: 'crynux-node:latest', force: 'true' }),
    });
    expectExit(forced, 0);
    expect(forced.outputs).toEqual({
      status: 'removed',
      fingerprint: a.fingerprint,
      'changed-paths': REWRITTEN,
      'aliases-moved': moved(['crynux-node:latest', a, null], ['crynux-node:v2.6.0', a, null]),
      servers: oneServer('removed', a, REWRITTEN),
    });
    expect(forced.stdout).toMatch(
      /^::warning title=lxc-publish%3A a followed alias goes::.*crynux-node:latest.*\(force: true\)/m,
    );
    expect(await resolve('incus', 'crynux-node:latest')).toBeUndefined();
  }, 120_000);
});
