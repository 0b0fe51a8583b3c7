import { describe, expect, it } from '@jest/globals';
import { sha256Sums, versionFiles } from '../../../src/simplestreams/checksums.js';
import type { ImagesIndex, SimplestreamsVersion } from '../../../src/simplestreams/images-index.js';
import { withLxdItems } from '../../../src/simplestreams/lxd.js';

const hex = (seed: string) => seed.repeat(64).slice(0, 64);

function container(name: string, meta: string, root: string): SimplestreamsVersion {
  return {
    items: {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: `images/${name}.incus.tar.xz`,
        sha256: hex(meta),
        size: 300,
        combined_squashfs_sha256: hex('f'),
      },
      squashfs: { ftype: 'squashfs', path: `images/${name}.squashfs`, sha256: hex(root), size: 1000 },
    },
  };
}

const index = (versions: Record<string, SimplestreamsVersion>): ImagesIndex => ({
  content_id: 'images',
  datatype: 'image-downloads',
  format: 'products:1.0',
  products: {
    'Crynux:bookworm:default:amd64': { arch: 'amd64', os: 'Crynux', release: 'bookworm', variant: 'default', versions },
  },
});

describe('versionFiles', () => {
  it('lists each file once, the LXD items naming the Incus files, a delta included', () => {
    const version = container('b', 'a', 'b');
    version.items['delta-202601010000'] = {
      ftype: 'squashfs.vcdiff',
      path: 'images/b.202601010000.vcdiff',
      sha256: hex('c'),
      size: 12,
      delta_base: '202601010000',
    };
    const withLxd = withLxdItems(index({ '202601020000': version }));
    const files = versionFiles(Object.values(withLxd.products)[0]!.versions['202601020000']!);
    expect(files).toEqual([
      { path: 'images/b.incus.tar.xz', sha256: hex('a'), size: 300, ftype: 'incus.tar.xz' },
      { path: 'images/b.squashfs', sha256: hex('b'), size: 1000, ftype: 'squashfs' },
      { path: 'images/b.202601010000.vcdiff', sha256: hex('c'), size: 12, ftype: 'squashfs.vcdiff' },
    ]);
  });
});

describe('sha256Sums', () => {
  it('has one sha256sum line per file the index names, sorted by name', () => {
    const sums = sha256Sums(
      withLxdItems(index({ '202601020000': container('z', 'd', 'e'), '202601010000': container('a', 'b', 'c') })),
    );
    expect(sums).toBe(
      `${hex('b')}  a.incus.tar.xz\n${hex('c')}  a.squashfs\n${hex('d')}  z.incus.tar.xz\n${hex('e')}  z.squashfs\n`,
    );
  });

  it('is empty for an empty index', () => {
    expect(sha256Sums(index({}))).toBe('');
  });

  it('leaves out what it cannot list truthfully: other directories, odd names, two hashes for one file, itself', () => {
    const odd = container('ok', 'a', 'b');
    odd.items['sub'] = { ftype: 'x', path: 'images/sub/file', sha256: hex('c'), size: 1 };
    odd.items['outside'] = { ftype: 'x', path: 'streams/v1/x', sha256: hex('c'), size: 1 };
    odd.items['self'] = { ftype: 'x', path: 'images/SHA256SUMS', sha256: hex('c'), size: 1 };
    odd.items['upper'] = { ftype: 'x', path: 'images/y', sha256: 'A'.repeat(64), size: 1 };
    const clash = container('ok', 'a', 'd'); // ok.squashfs again, with another hash
    const sums = sha256Sums(index({ '202601010000': odd, '202601020000': clash }));
    expect(sums).toBe(`${hex('a')}  ok.incus.tar.xz\n`);
  });
});
