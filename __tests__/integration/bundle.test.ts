// The committed dist/index.js, run exactly as the runner runs it: a fresh node process with
// INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle } from '../harness/action.js';
import { makeSplitContainerImage, sha256File, simplestreamsSerial, type TestImage } from '../harness/images.js';
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
