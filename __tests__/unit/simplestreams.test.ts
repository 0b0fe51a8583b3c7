import { describe, expect, it } from '@jest/globals';
import {
  findFingerprint,
  parseImagesIndex,
  productAliases,
  serialFor,
  versionFingerprint,
  type ImagesIndex,
} from '../../src/simplestreams.js';

const fingerprint = 'a'.repeat(64);
const metaSha = 'b'.repeat(64);

/** images.json as incus-simplestreams 6.0 writes it for one split container image. */
function sampleIndex(): ImagesIndex {
  return parseImagesIndex(
    JSON.stringify({
      content_id: 'images',
      datatype: 'image-downloads',
      format: 'products:1.0',
      products: {
        'Crynux:bookworm:default:amd64': {
          aliases: 'crynux-node:latest,crynux-node:v2.6.0',
          arch: 'amd64',
          os: 'Crynux',
          release: 'bookworm',
          variant: 'default',
          versions: {
            '202511241600': {
              items: {
                'incus.tar.xz': {
                  ftype: 'incus.tar.xz',
                  path: `images/${metaSha}.incus.tar.xz`,
                  sha256: metaSha,
                  size: 288,
                  combined_squashfs_sha256: fingerprint,
                },
                squashfs: { ftype: 'squashfs', path: `images/${metaSha}.squashfs`, sha256: 'c'.repeat(64), size: 4096 },
              },
            },
          },
        },
        'Crynux:bookworm:default:arm64': {
          arch: 'arm64',
          versions: {
            '202511241600': {
              items: {
                'incus.tar.xz': {
                  ftype: 'incus.tar.xz',
                  path: 'images/x.incus.tar.xz',
                  sha256: 'd'.repeat(64),
                  size: 1,
                  'combined_disk-kvm-img_sha256': 'e'.repeat(64),
                },
                'disk-kvm.img': { ftype: 'disk-kvm.img', path: 'images/x.qcow2', sha256: 'f'.repeat(64), size: 10 },
                'lxd.tar.xz': { ftype: 'lxd.tar.xz', path: 'images/x.incus.tar.xz', sha256: 'd'.repeat(64), size: 1 },
              },
            },
          },
        },
      },
    }),
  );
}

describe('parseImagesIndex', () => {
  it('refuses documents without products', () => {
    expect(() => parseImagesIndex('[]')).toThrow(/not a JSON object/);
    expect(() => parseImagesIndex('{"format":"products:1.0"}')).toThrow(/products/);
    expect(() => parseImagesIndex('{"products":')).toThrow();
  });
});

describe('findFingerprint', () => {
  it('finds the version carrying a split container fingerprint', () => {
    expect(findFingerprint(sampleIndex(), fingerprint)).toEqual({
      product: 'Crynux:bookworm:default:amd64',
      serial: '202511241600',
      aliases: ['crynux-node:latest', 'crynux-node:v2.6.0'],
      size: 288 + 4096,
      imageType: 'container',
    });
  });

  it('recognises a VM and counts a file shared by two items once', () => {
    const found = findFingerprint(sampleIndex(), 'e'.repeat(64));
    expect(found?.imageType).toBe('virtual-machine');
    expect(found?.size).toBe(11);
    expect(found?.aliases).toEqual([]);
  });

  it('returns undefined for a fingerprint that is not there', () => {
    expect(findFingerprint(sampleIndex(), '0'.repeat(64))).toBeUndefined();
    // the metadata tarball's own hash is not the image fingerprint
    expect(findFingerprint(sampleIndex(), metaSha)).toBeUndefined();
  });
});

describe('versionFingerprint', () => {
  it('uses the tarball hash of a unified image', () => {
    expect(
      versionFingerprint({
        items: {
          'incus_combined.tar.gz': { ftype: 'incus_combined.tar.gz', path: 'p', sha256: '1'.repeat(64), size: 1 },
        },
      }),
    ).toBe('1'.repeat(64));
  });

  it('has none for a version without Incus items', () => {
    expect(versionFingerprint({ items: {} })).toBeUndefined();
  });
});

describe('productAliases', () => {
  it('splits and trims, and copes with no aliases', () => {
    expect(productAliases({ aliases: ' a, b ,', versions: {} })).toEqual(['a', 'b']);
    expect(productAliases({ versions: {} })).toEqual([]);
  });
});

describe('serialFor', () => {
  it('formats creation_date in UTC as YYYYMMDDhhmm', () => {
    expect(serialFor(1764000000)).toBe('202511241600');
    expect(serialFor(Date.UTC(2026, 0, 2, 3, 4, 59) / 1000)).toBe('202601020304');
  });
});
