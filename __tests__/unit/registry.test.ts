import { describe, expect, it } from '@jest/globals';
import { convertCommand, planUpload, runIdentifier } from '../../src/registry.js';
import type { LocalImage } from '../../src/image.js';

const properties = {
  architecture: 'x86_64',
  creationDate: 1764000000,
  os: 'Crynux',
  release: 'bookworm',
  variant: 'default',
  propertiesArchitecture: 'amd64',
  description: 'd',
};
const split: LocalImage = {
  metadata: { path: '/w/My Image/incus.tar.xz', size: 10, compression: 'xz' },
  data: { path: '/w/My Image/$(id).squashfs', size: 20, kind: 'squashfs' },
  imageType: 'container',
  properties,
  size: 30,
};
const fingerprint = 'ab'.repeat(32);

describe('planUpload', () => {
  it('uses a directory of its own and fixed remote names, whatever the local names', () => {
    const plan = planUpload(split, fingerprint, '/var/www/lxc/uploads', '123.1');
    expect(plan.dir).toMatch(new RegExp(`^/var/www/lxc/uploads/${fingerprint.slice(0, 16)}-123\\.1-[0-9a-f]{8}$`));
    expect(plan.files).toEqual([
      { localPath: '/w/My Image/incus.tar.xz', size: 10, remoteName: 'metadata.tar.xz' },
      { localPath: '/w/My Image/$(id).squashfs', size: 20, remoteName: 'rootfs.squashfs' },
    ]);
  });

  it('gives two runs of the same image different directories', () => {
    const a = planUpload(split, fingerprint, '/u', 'local');
    const b = planUpload(split, fingerprint, '/u', 'local');
    expect(a.dir).not.toBe(b.dir);
  });

  it('names VM disks and unified tarballs by kind', () => {
    const vm: LocalImage = {
      ...split,
      data: { path: '/w/disk', size: 1, kind: 'qcow2' },
      imageType: 'virtual-machine',
    };
    expect(planUpload(vm, fingerprint, '/u', 'local').files.map((f) => f.remoteName)).toEqual([
      'metadata.tar.xz',
      'disk.qcow2',
    ]);
    const unified: LocalImage = {
      metadata: { path: '/w/u.tar.gz', size: 1, compression: 'gzip' },
      imageType: 'container',
      properties,
      size: 1,
    };
    expect(planUpload(unified, fingerprint, '/u', 'local').files.map((f) => f.remoteName)).toEqual(['image.tar.gz']);
  });
});

describe('runIdentifier', () => {
  it('uses the workflow run id and attempt, and nothing that is not a number', () => {
    expect(runIdentifier({ GITHUB_RUN_ID: '987', GITHUB_RUN_ATTEMPT: '2' })).toBe('987.2');
    expect(runIdentifier({})).toBe('local');
    expect(runIdentifier({ GITHUB_RUN_ID: '1;rm -rf /' })).toBe('local');
  });
});

describe('convertCommand', () => {
  it('runs incus-simplestreams add in the registry with TZ=UTC, no default alias, one --alias each', () => {
    expect(
      convertCommand(
        { simplestreamsDir: '/var/www/lxc/simplestreams', aliases: ['crynux-node:v2.6.0', 'a b'], defaultAlias: false },
        ['/u/d/metadata.tar.xz', '/u/d/rootfs.squashfs'],
      ),
    ).toBe(
      'cd -- /var/www/lxc/simplestreams && env TZ=UTC incus-simplestreams add --no-default-alias ' +
        "--alias crynux-node:v2.6.0 --alias 'a b' -- /u/d/metadata.tar.xz /u/d/rootfs.squashfs",
    );
  });

  it('keeps the default alias when asked', () => {
    expect(convertCommand({ simplestreamsDir: '/s', aliases: [], defaultAlias: true }, ['/u/i.tar.xz'])).toBe(
      'cd -- /s && env TZ=UTC incus-simplestreams add -- /u/i.tar.xz',
    );
  });
});
