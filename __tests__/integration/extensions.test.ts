// Raw rootfs tarballs, retention and the owner's own convert script, through src/ against the
// real loopback registry (incus-simplestreams 6.0, which cannot take a rootfs tarball itself).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor } from '../harness/action.js';
import { sleep } from '../harness/exec.js';
import { inProcessPublisher } from '../harness/in-process.js';
import { makeSplitContainerImage, type ImageOptions, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { sha256Sums } from '../../src/simplestreams/checksums.js';
import type { ImagesIndex } from '../../src/simplestreams/images-index.js';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-extensions-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

const { log, publishWith } = inProcessPublisher();

let count = 0;
async function newImage(opts: ImageOptions = {}): Promise<TestImage> {
  const dir = path.join(work, `image-${count++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', ...opts });
}

const imagesJson = async () =>
  JSON.parse(await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8')) as {
    products: Record<string, { aliases?: string; versions: Record<string, unknown> }>;
  };
const sha256 = (...files: string[]) =>
  execFileSync('sh', ['-c', 'cat "$@" | sha256sum', 'sh', ...files])
    .toString()
    .split(' ')[0] as string;

/** The serials of every release of an image line (os:release:variant:arch), whatever product holds them. */
async function lineSerials(line: string): Promise<string[]> {
  const products = Object.entries((await imagesJson()).products).filter(
    ([key]) => key === line || key.startsWith(`${line}:`),
  );
  return products.flatMap(([, product]) => Object.keys(product.versions ?? {})).sort();
}

describe('a raw rootfs.tar.xz', () => {
  /** A metadata tarball with a rootfs.tar.xz beside it, as distrobuilder's tarball output. */
  async function tarballImage(variant: string): Promise<TestImage & { tarball: string }> {
    const image = await newImage({ variant });
    const tree = path.join(image.dir, 'tree');
    await fsp.mkdir(path.join(tree, 'etc'), { recursive: true });
    await fsp.writeFile(path.join(tree, 'etc/os-release'), `ID=crynux\nVARIANT=${variant}\n`);
    const tarball = path.join(image.dir, 'rootfs.tar.xz');
    execFileSync('tar', ['-C', tree, '--owner=0', '--group=0', '--mtime=@1700000000', '-cJf', tarball, '.']);
    return { ...image, tarball };
  }

  it('is converted on the runner for the 6.0 tool, and a republish finds the same fingerprint', async () => {
    const image = await tarballImage('tarball');
    // A temporary directory of this run's own: other tests on the machine convert too.
    const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-extensions-tmp-'));
    const conversions = async () =>
      (await fsp.readdir(tmp)).filter((name) => name.startsWith('lxc-publish-rootfs-')).length;
    const untouched = (await fsp.stat(tmp)).mtimeMs;
    await sleep(20);
    process.env['RUNNER_TEMP'] = tmp;
    let result: Awaited<ReturnType<typeof publishWith>>;
    try {
      result = await publishWith(inputsFor(registry, { metadata: image.metadata, rootfs: image.tarball }));
    } finally {
      delete process.env['RUNNER_TEMP'];
    }
    // The conversion ran there (a directory was made and removed), and nothing of it stays.
    expect((await fsp.stat(tmp)).mtimeMs).toBeGreaterThan(untouched);
    expect(await conversions()).toBe(0);
    await fsp.rm(tmp, { recursive: true, force: true });
    expect(log().join('')).toMatch(/incus-simplestreams 6\.0\.\d+ cannot take a rootfs tarball .*converting/);
    expect(result.status).toBe('published');
    expect(result.imageType).toBe('container');
    // What was published: the metadata and a squashfs, not the tarball.
    expect(result.fingerprint).not.toBe(sha256(image.metadata, image.tarball));
    const listed = await registry.incusList();
    expect(listed.map((entry) => entry.fingerprint)).toContain(result.fingerprint);

    const again = await publishWith(inputsFor(registry, { metadata: image.metadata, rootfs: image.tarball }));
    expect(again.status).toBe('unchanged');
    expect(again.fingerprint).toBe(result.fingerprint);
    await expect(registry.simplestreams(['verify'])).resolves.toMatchObject({ code: 0 });
  });

  it('is refused before any upload with convert-rootfs: never on the 6.0 tool', async () => {
    const image = await tarballImage('never');
    await expect(
      publishWith(
        inputsFor(registry, { metadata: image.metadata, rootfs: image.tarball }, { 'convert-rootfs': 'never' }),
      ),
    ).rejects.toThrow(/cannot take a rootfs tarball .*convert-rootfs: auto/);
    expect(await fsp.readdir(registry.uploadDir)).toEqual([]);
  });
});

describe('keep-versions', () => {
  it('keeps the newest N per product, the one just published, and what aliases name', async () => {
    const base = 1767225600; // 2026-01-01
    const releases = await Promise.all(
      [1, 2, 3, 4].map((day) => newImage({ variant: 'retained', creationDate: base + day * 86400 })),
    );
    const other = await newImage({ variant: 'untouched', creationDate: base });
    await publishWith(inputsFor(registry, other));
    for (const release of releases) {
      await publishWith(inputsFor(registry, release, { aliases: 'crynux-node:latest', 'keep-versions': '2' }));
    }
    // Each release is a product of its own (the line and the serial); keep-versions counts the
    // releases of the line.
    const retained = 'Crynux:bookworm:retained:amd64';
    expect(await lineSerials(retained)).toEqual(['202601040000', '202601050000']);
    expect((await imagesJson()).products[`${retained}:202601050000`]?.aliases).toBe('crynux-node:latest');
    expect((await imagesJson()).products[`${retained}:202601040000`]?.aliases).toBeUndefined();
    // Other lines keep their single release.
    expect(await lineSerials('Crynux:bookworm:untouched:amd64')).toHaveLength(1);
    const listed = (await registry.incusList()).map((entry) => entry.fingerprint);
    expect(listed).toEqual(expect.arrayContaining([releases[2]?.fingerprint, releases[3]?.fingerprint]));
    expect(listed).not.toContain(releases[0]?.fingerprint);
    expect(listed).not.toContain(releases[1]?.fingerprint);
    expect(await registry.incusImageInfo('crynux-node:latest')).toContain(`Fingerprint: ${releases[3]?.fingerprint}`);

    // Republishing an old release keeps it, though it is not among the newest two.
    const old = await publishWith(inputsFor(registry, releases[0] as TestImage, { 'keep-versions': '2' }));
    expect(old.status).toBe('published');
    expect(await lineSerials(retained)).toContain('202601020000');
    // The dropped versions' files wait out their grace time for clients with a cached index.
    const retired = await fsp.readFile(path.join(registry.simplestreamsDir, '.lxc-publish/retired'), 'utf8');
    expect(retired).toMatch(/images\/[0-9a-f]{64}\.squashfs/);
    await expect(registry.simplestreams(['verify'])).resolves.toMatchObject({ code: 0 });
  });
});

describe('convert-command', () => {
  let scripts: string;
  beforeAll(async () => {
    scripts = path.join(registry.root, 'bin');
    await fsp.mkdir(scripts, { mode: 0o755 });
  });

  /** A script in the shape of a registry owner's process-lxc-images.sh. */
  async function script(name: string, body: string): Promise<string> {
    const file = path.join(scripts, name);
    await fsp.writeFile(file, `#!/bin/sh\nset -eu\n${body}\n`, { mode: 0o755 });
    return file;
  }

  it('leaves images/SHA256SUMS matching the index the script wrote, though the action changes nothing in it', async () => {
    // The script writes the whole version itself; without aliases or LXD items the action has
    // nothing to add to the index, but SHA256SUMS must still follow it.
    const convert = await script('adds-itself.sh', 'incus-simplestreams add --no-default-alias "$1" "$2"');
    const image = await newImage({ variant: 'sums' });
    const result = await publishWith(inputsFor(registry, image, { 'convert-command': convert, 'lxd-compat': 'false' }));
    expect(result.status).toBe('published');
    const sums = await fsp.readFile(path.join(registry.simplestreamsDir, 'images/SHA256SUMS'), 'utf8');
    expect(sums).toBe(sha256Sums((await imagesJson()) as unknown as ImagesIndex));
    expect(sums).toContain(sha256(image.rootfs));
  });

  it("runs the owner's script with the documented arguments, then checks the index", async () => {
    const argsLog = path.join(registry.root, 'srv', 'convert-args.log');
    const convert = await script(
      'process-lxc-images.sh',
      `metadata=$1 data=$2 fingerprint=$3 serial=$4
shift 4
printf '%s\\n' "$PWD" "$metadata" "$data" "$fingerprint" "$serial" "$TZ" "$@" > ${argsLog}
set -- $(for alias in "$@"; do printf -- '--alias %s ' "$alias"; done)
incus-simplestreams add --no-default-alias "$@" "$metadata" "$data"`,
    );
    const image = await newImage({ variant: 'custom' });
    const result = await publishWith(
      inputsFor(registry, image, { 'convert-command': convert, aliases: 'crynux-node:custom' }),
    );
    expect(result.status).toBe('published');
    expect(result.fingerprint).toBe(image.fingerprint);
    const args = (await fsp.readFile(argsLog, 'utf8')).trim().split('\n');
    // The uploads sit in the image's own directory under upload-dir.
    const uploaded = new RegExp(`^${registry.uploadDir}/[0-9a-f]{64}/`);
    expect(args).toEqual([
      registry.simplestreamsDir,
      expect.stringMatching(new RegExp(`${uploaded.source}metadata\\.tar\\.xz$`)),
      expect.stringMatching(new RegExp(`${uploaded.source}rootfs\\.squashfs$`)),
      image.fingerprint,
      result.serial,
      'UTC',
      'crynux-node:custom',
    ]);
    expect(await registry.incusImageInfo('crynux-node:custom')).toContain(`Fingerprint: ${image.fingerprint}`);
    // The script put the alias on: the moves are counted from the index as the lock found it.
    expect(result.aliasMoves).toEqual([
      expect.objectContaining({
        alias: 'crynux-node:custom',
        from: null,
        to: expect.objectContaining({ fingerprint: image.fingerprint }),
      }),
    ]);
  });

  it("fails with the script's stderr, and when the index does not list the image afterwards", async () => {
    const failing = await script('fails.sh', 'echo "disk quota exceeded" >&2; exit 3');
    await expect(publishWith(inputsFor(registry, await newImage(), { 'convert-command': failing }))).rejects.toThrow(
      /convert-command .*fails\.sh failed on the server: it exited with status 3\.\ndisk quota exceeded/,
    );
    // Output that reads like sshd refusing a channel is still the script's own: it ran, and does
    // not run again over another connection.
    const runs = path.join(registry.root, 'srv', 'refusal-runs.log');
    const lookalike = await script(
      'looks-refused.sh',
      `echo ran >> ${runs}; echo "channel 3: open failed: administratively prohibited: open failed" >&2; exit 1`,
    );
    await expect(publishWith(inputsFor(registry, await newImage(), { 'convert-command': lookalike }))).rejects.toThrow(
      /convert-command .*looks-refused\.sh failed on the server: it exited with status 1\.\nchannel 3: open failed/,
    );
    expect(await fsp.readFile(runs, 'utf8')).toBe('ran\n');
    const idle = await script('does-nothing.sh', 'true');
    await expect(publishWith(inputsFor(registry, await newImage(), { 'convert-command': idle }))).rejects.toThrow(
      /convert-command .*does-nothing\.sh succeeded, but images\.json does not list fingerprint/,
    );
  });
});
