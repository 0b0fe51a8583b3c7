import { describe, expect, it } from '@jest/globals';
import type { LocalImage } from '../../../src/image/local-image.js';
import { rootfsDecision } from '../../../src/image/rootfs.js';
import { lockPath, remoteImage, remotePaths, stagingDir } from '../../../src/registry/layout.js';
import { customConvertCommand, stageCommand } from '../../../src/registry/stage.js';

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
  it('keep one upload directory per image, and state beside the live tree', () => {
    const key = 'cd'.repeat(32); // an upload key (image/hashing.ts)
    expect(remoteImage(paths, key, split).dir).toBe(`/var/www/lxc/uploads/${key}`);
    expect(remotePaths(remoteImage(paths, key, split))).toEqual([
      `/var/www/lxc/uploads/${key}/metadata.tar.xz`,
      `/var/www/lxc/uploads/${key}/rootfs.squashfs`,
    ]);
    expect(stagingDir(paths, key)).toBe(`/var/www/lxc/simplestreams/.lxc-publish/staging/${key}`);
    expect(lockPath(paths)).toBe('/var/www/lxc/simplestreams/.lxc-publish/lock');
  });
});

describe('stageCommand', () => {
  it('runs incus-simplestreams add with TZ=UTC in a fresh staging tree, without aliases', () => {
    expect(stageCommand('/s/.lxc-publish/staging/x', ['/u/x/metadata.tar.xz', "/u/x/it's.squashfs"])).toBe(
      'rm -rf -- /s/.lxc-publish/staging/x && mkdir -p -- /s/.lxc-publish/staging/x && ' +
        'cd -- /s/.lxc-publish/staging/x && env TZ=UTC incus-simplestreams add --no-default-alias -- ' +
        "/u/x/metadata.tar.xz '/u/x/it'\\''s.squashfs'",
    );
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
