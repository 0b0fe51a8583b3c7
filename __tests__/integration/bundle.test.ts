// The committed dist/index.js, run exactly as the runner runs it: a fresh node process with
// INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle } from '../harness/action.js';
import { makeSplitContainerImage, sha256File, simplestreamsSerial, type TestImage } from '../harness/images.js';
import { exactTree } from '../harness/fixtures.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bundle-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

async function image(name: string): Promise<TestImage> {
  const dir = path.join(work, name);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: name });
}

describe('dist/index.js', () => {
  it('publishes, sets every output and writes the job summary', async () => {
    const published = await image('bundle');
    const result = await runBundle(
      inputsFor(registry, published, { aliases: 'crynux-node:v2.6.0, crynux-node:latest' }),
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('::error');

    const metaSha = await sha256File(published.metadata);
    expect(result.outputs).toEqual({
      fingerprint: published.fingerprint,
      // Each release is a product of its own: the line and the serial.
      product: `Crynux:bookworm:bundle:amd64:${simplestreamsSerial(published.creationDate)}`,
      serial: simplestreamsSerial(published.creationDate),
      aliases: 'crynux-node:v2.6.0,crynux-node:latest',
      'image-type': 'container',
      size: String((await fsp.stat(published.metadata)).size + (await fsp.stat(published.rootfs)).size),
      status: 'published',
      // The first release of its line: no earlier one to make a delta from.
      deltas: '[]',
      // No public-url: nothing to check.
      'public-check': 'skipped',
      'planned-status': '',
      // Both aliases were on no release of this architecture before.
      'aliases-moved': JSON.stringify(
        ['crynux-node:latest', 'crynux-node:v2.6.0'].map((alias) => ({
          alias,
          architecture: 'x86_64',
          type: 'container',
          from: null,
          to: {
            product: `Crynux:bookworm:bundle:amd64:${simplestreamsSerial(published.creationDate)}`,
            serial: simplestreamsSerial(published.creationDate),
            fingerprint: published.fingerprint,
          },
        })),
      ),
      'registry-url': '',
      'changed-paths': JSON.stringify(['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS']),
      // No public-url: no address to purge them at.
      'changed-urls': '[]',
      // No mirrors: the one server, named host:port (the port is not 22).
      servers: JSON.stringify([
        {
          name: `${registry.host}:${registry.sshPort}`,
          host: registry.host,
          port: registry.sshPort,
          status: 'published',
          fingerprint: published.fingerprint,
          product: `Crynux:bookworm:bundle:amd64:${simplestreamsSerial(published.creationDate)}`,
          serial: simplestreamsSerial(published.creationDate),
          changedPaths: ['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS'],
        },
      ]),
      // No remote-name and no public-url: REMOTE stands for the name the user gives the remote.
      'launch-command': 'incus launch REMOTE:crynux-node:v2.6.0',
      // The files as the registry serves them, named after the metadata tarball's sha256.
      files: JSON.stringify([
        {
          path: `images/${metaSha}.incus.tar.xz`,
          sha256: metaSha,
          size: (await fsp.stat(published.metadata)).size,
          ftype: 'incus.tar.xz',
        },
        {
          path: `images/${metaSha}.squashfs`,
          sha256: await sha256File(published.rootfs),
          size: (await fsp.stat(published.rootfs)).size,
          ftype: 'squashfs',
        },
      ]),
    });
    expect(result.summary).toContain(published.fingerprint);
    expect(result.summary).toContain('incus launch REMOTE:crynux-node:v2.6.0');

    // The real client, through nginx, sees the fingerprint the action output.
    const listed = await registry.incusList();
    expect(listed.map((entry) => entry.fingerprint)).toContain(result.outputs['fingerprint']);
    // The key is registered as a secret, and never printed otherwise.
    const keyLines = registry.privateKey.split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
    const masks = result.stdout.split('\n').filter((line) => line.startsWith('::add-mask::'));
    const otherOutput = result.stdout
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    for (const line of keyLines) {
      expect(masks).toContain(`::add-mask::${line}`);
      expect(otherOutput).not.toContain(line);
    }
  });

  it('with dry-run reports what the publish will do, and the server stays byte for byte as it was', async () => {
    // A line with two releases; latest on the first, as after a rollback.
    const line = async (name: string) => {
      const dir = path.join(work, name);
      await fsp.mkdir(dir);
      return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: 'dry' });
    };
    const [a, b, c] = [await line('dry-a'), await line('dry-b'), await line('dry-c')];
    for (const [release, aliases] of [
      [a, 'crynux-node:v1,crynux-node:latest'],
      [b, 'crynux-node:v2'],
    ] as const) {
      const done = await runBundle(inputsFor(registry, release, { aliases, 'keep-versions': '2' }));
      expect({ code: done.code, stderr: done.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const publish = { aliases: 'crynux-node:v3,crynux-node:latest', 'keep-versions': '2', 'remote-name': 'crynux' };
    const before = {
      registry: await exactTree(registry.simplestreamsDir),
      uploads: await exactTree(registry.uploadDir),
    };

    const dry = await runBundle(inputsFor(registry, c, { ...publish, 'dry-run': 'true' }));
    expect({ code: dry.code, stderr: dry.stderr, errors: dry.stdout.match(/^::error.*$/gm) }).toEqual({
      code: 0,
      stderr: '',
      errors: null,
    });
    expect({
      registry: await exactTree(registry.simplestreamsDir),
      uploads: await exactTree(registry.uploadDir),
    }).toEqual(before);
    const serial = (image: TestImage) => simplestreamsSerial(image.creationDate);
    const product = (image: TestImage) => `Crynux:bookworm:dry:amd64:${serial(image)}`;
    expect(dry.outputs).toMatchObject({
      status: 'dry-run',
      'planned-status': 'published',
      fingerprint: c.fingerprint,
      product: product(c),
      serial: serial(c),
      'launch-command': 'incus launch crynux:crynux-node:v3',
    });
    // latest moves from a to c; with it gone from a, keep-versions 2 (c and b) drops a and its v1.
    const moved = JSON.parse(dry.outputs['aliases-moved'] ?? '') as { alias: string; from: unknown; to: unknown }[];
    expect(moved.map((move) => [move.alias, move.from !== null, move.to !== null])).toEqual([
      ['crynux-node:latest', true, true],
      ['crynux-node:v1', true, false],
      ['crynux-node:v3', false, true],
    ]);
    expect(dry.stdout).toContain(`keep-versions 2: would drop ${product(a)} ${serial(a)}`);
    expect(dry.stdout).toContain(`Would try a delta from release ${serial(b)}`);
    expect(dry.stdout).toContain('dry-run: nothing was uploaded and nothing on the server was changed');
    expect(dry.summary).toContain('Dry run: nothing was published');
    expect(dry.summary).toContain('a publish would report published');

    // The publish itself does what the dry run said.
    const real = await runBundle(inputsFor(registry, c, publish));
    expect(real.code).toBe(0);
    expect(real.outputs).toMatchObject({ status: 'published', 'planned-status': '', product: product(c) });
    expect(real.outputs['aliases-moved']).toBe(dry.outputs['aliases-moved']);
    // The delta was tried from b (these random images make one too large to publish).
    expect(real.stdout).toMatch(new RegExp(`(Delta|No delta) from release ${serial(b)}`));

    // latest back onto b, which is published: a dry run says aliases-updated, and so does the move.
    const back = { aliases: 'crynux-node:latest', 'keep-versions': '2' };
    const backBefore = await exactTree(registry.simplestreamsDir);
    const dryBack = await runBundle(inputsFor(registry, b, { ...back, 'dry-run': 'true' }));
    expect(dryBack.outputs).toMatchObject({ status: 'dry-run', 'planned-status': 'aliases-updated' });
    expect(await exactTree(registry.simplestreamsDir)).toEqual(backBefore);
    const moveBack = await runBundle(inputsFor(registry, b, back));
    expect(moveBack.outputs).toMatchObject({ status: 'aliases-updated', fingerprint: b.fingerprint });
    expect(JSON.parse(moveBack.outputs['aliases-moved'] ?? '')).toEqual([
      {
        alias: 'crynux-node:latest',
        architecture: 'x86_64',
        type: 'container',
        from: { product: product(c), serial: serial(c), fingerprint: c.fingerprint },
        to: { product: product(b), serial: serial(b), fingerprint: b.fingerprint },
      },
    ]);
    expect(moveBack.outputs['aliases-moved']).toBe(dryBack.outputs['aliases-moved']);
    expect(moveBack.summary).toContain('Image already published; aliases moved onto it');
    // Once more: nothing moves, and nothing is said to.
    const again = await runBundle(inputsFor(registry, b, back));
    expect(again.outputs).toMatchObject({ status: 'unchanged', 'aliases-moved': '[]' });
  });

  it('with dry-run on a registry that was never published to, makes no directory', async () => {
    // Made by the SSH user, as the server guide has the owner make it.
    const fresh = path.join(registry.root, 'srv', 'lxc', 'fresh-dry-run');
    const simplestreamsDir = path.join(fresh, 'simplestreams');
    const uploadDir = path.join(fresh, 'uploads');
    expect((await registry.ssh(`mkdir -p ${simplestreamsDir}`)).code).toBe(0);
    const before = await exactTree(fresh);
    const dry = await runBundle(
      inputsFor(registry, await image('fresh-dry'), {
        'simplestreams-dir': simplestreamsDir,
        'upload-dir': uploadDir,
        'dry-run': 'true',
      }),
    );
    expect(dry.code).toBe(0);
    expect(dry.outputs).toMatchObject({ status: 'dry-run', 'planned-status': 'published', 'aliases-moved': '[]' });
    expect(await exactTree(fresh)).toEqual(before);
  });

  it('fails the step before uploading when the host key does not match', async () => {
    const refused = await image('refused');
    const before = await fsp.readdir(registry.uploadDir);
    const result = await runBundle(inputsFor(registry, refused, { 'host-fingerprint': `SHA256:${'B'.repeat(43)}` }));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /::error title=lxc-publish%3A check the host-fingerprint input::Host key verification failed .*presented ssh-ed25519 SHA256:/,
    );
    expect(result.summary).toMatch(/Image not published[\s\S]*Host key verification failed/);
    expect(result.outputs).toEqual({});
    expect(await fsp.readdir(registry.uploadDir)).toEqual(before);
    const listed = await registry.incusList();
    expect(listed.map((entry) => entry.fingerprint)).not.toContain(refused.fingerprint);
  });

  it('reports a bad input without connecting', async () => {
    const result = await runBundle({ ...inputsFor(registry, { metadata: 'missing.tar.xz', rootfs: '' }) });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /::error title=lxc-publish%3A check the metadata input::metadata: "missing.tar.xz" does not exist/,
    );
  });
});
