import { describe, expect, it } from '@jest/globals';
import type { LocalImage } from '../../../src/image/local-image.js';
import { rootfsDecision } from '../../../src/image/rootfs.js';
import { imageKey, lockPath, remoteImage, remotePaths, stagingDir } from '../../../src/registry/layout.js';
import { customConvertCommand, parseStageOutput, stagedMismatches } from '../../../src/registry/stage.js';
import type { StagedVersion } from '../../../src/simplestreams/plan.js';

const properties = {
  architecture: 'x86_64',
  creationDate: 1764000000,
  os: 'Crynux',
  release: 'bookworm',
  variant: 'default',
  propertiesArchitecture: 'amd64',
  description: 'd',
};
/** Only paths and sizes matter here: nothing is read. */
const opened = { handle: undefined as never, mtimeMs: 0, input: 'rootfs' as const };
const split: LocalImage = {
  metadata: { path: '/w/My Image/incus.tar.xz', size: 10, ...opened, compression: 'xz' },
  data: { path: '/w/My Image/$(id).squashfs', size: 20, ...opened, kind: 'squashfs' },
  imageType: 'container',
  properties,
  size: 30,
};
const fingerprint = 'ab'.repeat(32);
const paths = { simplestreamsDir: '/var/www/lxc/simplestreams', uploadDir: '/var/www/lxc/uploads' };
const remoteNames = (image: LocalImage): string[] => remoteImage(paths, 'k', image).files.map((file) => file.name);

describe('remote names', () => {
  it('are fixed by kind, whatever the local names', () => {
    expect(remoteNames(split)).toEqual(['metadata.tar.xz', 'rootfs.squashfs']);
    const vm: LocalImage = {
      ...split,
      data: { path: '/w/disk', size: 1, ...opened, kind: 'qcow2' },
      imageType: 'virtual-machine',
    };
    expect(remoteNames(vm)).toEqual(['metadata.tar.xz', 'disk.qcow2']);
    const unified: LocalImage = {
      metadata: { path: '/w/u.tar.gz', size: 1, ...opened, compression: 'gzip' },
      imageType: 'container',
      properties,
      size: 1,
    };
    expect(remoteNames(unified)).toEqual(['image.tar.gz']);
  });
});

describe('server-side paths', () => {
  it('keep one upload directory per image and registry, and state beside the live tree', () => {
    const uploadKey = 'cd'.repeat(32); // image/hashing.ts
    const key = imageKey(paths, uploadKey);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(remoteImage(paths, uploadKey, split).key).toBe(key);
    expect(remoteImage(paths, uploadKey, split).dir).toBe(`/var/www/lxc/uploads/${key}`);
    expect(remotePaths(remoteImage(paths, uploadKey, split))).toEqual([
      `/var/www/lxc/uploads/${key}/metadata.tar.xz`,
      `/var/www/lxc/uploads/${key}/rootfs.squashfs`,
    ]);
    expect(stagingDir(paths, key)).toBe(`/var/www/lxc/simplestreams/.lxc-publish/staging/${key}`);
    expect(lockPath(paths)).toBe('/var/www/lxc/simplestreams/.lxc-publish/lock');
  });

  it('never share an image directory between two registries sharing an upload-dir', () => {
    const uploadKey = 'cd'.repeat(32);
    const other = { ...paths, simplestreamsDir: '/var/www/lxc/beta' };
    expect(remoteImage(other, uploadKey, split).dir).not.toBe(remoteImage(paths, uploadKey, split).dir);
    expect(imageKey(other, uploadKey)).not.toBe(imageKey(paths, uploadKey));
  });
});

describe('the staging report', () => {
  const meta = 'a'.repeat(64);
  const data = 'b'.repeat(64);
  const staged: StagedVersion = {
    product: 'p',
    productFields: {},
    serial: '202601010000',
    version: {
      items: {
        'incus.tar.xz': { ftype: 'incus.tar.xz', path: 'images/m.incus.tar.xz', sha256: meta, size: 1 },
        squashfs: { ftype: 'squashfs', path: 'images/m.squashfs', sha256: data, size: 1 },
      },
    },
  };
  const report = (lines: string[]) => parseStageOutput(Buffer.from(lines.join('\n') + '\n'));

  it('reads the sums of the staged copies and the index, and skips noise', () => {
    const out = report([
      'a login shell says hello',
      `sum ${meta} m.incus.tar.xz`,
      `sum ${data} m.squashfs`,
      `sum ${data} ../escape`,
      `index ${Buffer.from('{"products":{}}').toString('base64')}`,
    ]);
    expect([...out.sums]).toEqual([
      ['m.incus.tar.xz', meta],
      ['m.squashfs', data],
    ]);
    expect(out.index.toString()).toBe('{"products":{}}');
  });

  it('finds every staged copy that does not hold the uploaded bytes', () => {
    const sums = (m: string, d: string) =>
      new Map([
        ['m.incus.tar.xz', m],
        ['m.squashfs', d],
      ]);
    expect(stagedMismatches(staged, sums(meta, data), [meta, data])).toEqual([]);
    // The tool recorded the runner's bytes but copied others.
    expect(stagedMismatches(staged, sums(meta, 'c'.repeat(64)), [meta, data])).toEqual(['images/m.squashfs']);
    // The tool recorded and copied bytes the runner never uploaded.
    expect(stagedMismatches(staged, sums(meta, data), [meta, 'c'.repeat(64)])).toEqual([
      'images/m.squashfs',
      `an uploaded file (sha256 ${'c'.repeat(64)})`,
    ]);
    // A copy the report does not name.
    expect(stagedMismatches(staged, new Map([['m.incus.tar.xz', meta]]), [meta, data])).toEqual(['images/m.squashfs']);
  });
});

describe('rootfsDecision', () => {
  it('uploads the tarball as it is only when the server tool takes it (7.0.1 and later)', () => {
    expect(rootfsDecision('auto', '7.0.1').convert).toBe(false);
    expect(rootfsDecision('auto', '7.1.0').convert).toBe(false);
    expect(rootfsDecision('auto', '6.0.4').convert).toBe(true);
    expect(rootfsDecision('auto', '7.0.0').convert).toBe(true);
    expect(rootfsDecision('auto', undefined).convert).toBe(true);
    expect(rootfsDecision('auto', '6.0.4').reason).toMatch(/6\.0\.4 cannot take a rootfs tarball .* converting/);
    expect(rootfsDecision('always', '7.2.0').convert).toBe(true);
    expect(rootfsDecision('never', '7.0.1').convert).toBe(false);
    expect(() => rootfsDecision('never', '6.0.4')).toThrow(/6\.0\.4 cannot take .*convert-rootfs: auto/);
  });

  it('names raw tarballs by their compression', () => {
    const tarball: LocalImage = {
      ...split,
      data: { path: '/w/rootfs.tar.xz', size: 1, ...opened, kind: 'rootfs-tarball', compression: 'xz' },
    };
    expect(remoteNames(tarball)).toEqual(['metadata.tar.xz', 'rootfs.tar.xz']);
  });
});

describe('customConvertCommand', () => {
  it('runs the owner script in the registry with TZ=UTC and documented, quoted arguments', () => {
    expect(
      customConvertCommand('/usr/local/bin/process-lxc-images.sh', '/var/www/lxc/simplestreams', {
        metadata: '/u/f/metadata.tar.xz',
        data: '/u/f/rootfs.squashfs',
        fingerprint,
        serial: '202601010000',
        aliases: ['crynux-node:v2.6.0', "it's"],
      }),
    ).toBe(
      'cd -- /var/www/lxc/simplestreams && env TZ=UTC /usr/local/bin/process-lxc-images.sh ' +
        `/u/f/metadata.tar.xz /u/f/rootfs.squashfs ${fingerprint} 202601010000 crynux-node:v2.6.0 'it'\\''s'`,
    );
    expect(
      customConvertCommand('convert', '/s', {
        metadata: '/u/i.tar.xz',
        data: '',
        fingerprint,
        serial: '1',
        aliases: [],
      }),
    ).toBe(`cd -- /s && env TZ=UTC convert /u/i.tar.xz '' ${fingerprint} 1`);
  });
});
