import { describe, expect, it } from '@jest/globals';
import { incusWarnings } from '../../../src/image/kinds.js';
import { markUnifiedVm } from '../../../src/simplestreams/unified-vm.js';
import { lxdWarnings } from '../../../src/image/kinds.js';
import { withLxdItems } from '../../../src/simplestreams/lxd.js';
import {
  findFingerprint,
  referencedPaths,
  versionFingerprint,
  type ImagesIndex,
} from '../../../src/simplestreams/images-index.js';

const sha = (c: string): string => c.repeat(64);

/** images.json as incus-simplestreams 6.0 writes it: a split container, a split VM, two unified images. */
function sampleIndex(): ImagesIndex {
  return {
    content_id: 'images',
    datatype: 'image-downloads',
    format: 'products:1.0',
    products: {
      'Crynux:bookworm:node:amd64': {
        aliases: 'crynux-node:latest',
        arch: 'amd64',
        os: 'Crynux',
        release: 'bookworm',
        release_title: 'bookworm',
        variant: 'node',
        versions: {
          '202601010000': {
            items: {
              'incus.tar.xz': {
                ftype: 'incus.tar.xz',
                path: `images/${sha('1')}.incus.tar.xz`,
                sha256: sha('1'),
                size: 476,
                combined_squashfs_sha256: sha('a'),
              },
              squashfs: { ftype: 'squashfs', path: `images/${sha('1')}.squashfs`, sha256: sha('2'), size: 8192 },
            },
          },
          '202601020000': {
            items: {
              'incus.tar.xz': {
                ftype: 'incus.tar.xz',
                path: `images/${sha('3')}.incus.tar.xz`,
                sha256: sha('3'),
                size: 480,
                combined_squashfs_sha256: sha('b'),
              },
              squashfs: { ftype: 'squashfs', path: `images/${sha('3')}.squashfs`, sha256: sha('4'), size: 8192 },
            },
          },
        },
      },
      'Crynux:bookworm:vm:amd64': {
        arch: 'amd64',
        os: 'Crynux',
        release: 'bookworm',
        variant: 'vm',
        versions: {
          '202601010001': {
            items: {
              'disk-kvm.img': {
                ftype: 'disk-kvm.img',
                path: `images/${sha('5')}.qcow2`,
                sha256: sha('6'),
                size: 196616,
              },
              'incus.tar.xz': {
                ftype: 'incus.tar.xz',
                path: `images/${sha('5')}.incus.tar.xz`,
                sha256: sha('5'),
                size: 476,
                'combined_disk-kvm-img_sha256': sha('c'),
              },
            },
          },
        },
      },
      'Crynux:bookworm:unified:amd64': {
        arch: 'amd64',
        versions: {
          '202601010002': {
            items: {
              'incus_combined.tar.gz': {
                ftype: 'incus_combined.tar.gz',
                path: `images/${sha('d')}.incus_combined.tar.gz`,
                sha256: sha('d'),
                size: 4788,
              },
            },
          },
        },
      },
      'Crynux:bookworm:unifiedvm:amd64': {
        arch: 'amd64',
        versions: {
          '202601010003': {
            items: {
              'incus_combined.tar.gz': {
                ftype: 'incus_combined.tar.gz',
                path: `images/${sha('e')}.incus_combined.tar.gz`,
                sha256: sha('e'),
                size: 696,
              },
            },
          },
        },
      },
    },
  };
}

const items = (index: ImagesIndex, product: string, serial: string) => {
  const found = index.products[product]?.versions[serial]?.items;
  if (!found) throw new Error(`no version ${product} ${serial}`);
  return found;
};

describe('withLxdItems', () => {
  it('gives every incus.tar.xz item an lxd.tar.xz twin with the same path, hashes, size and combined fields', () => {
    const result = withLxdItems(sampleIndex());
    const container = items(result, 'Crynux:bookworm:node:amd64', '202601010000');
    expect(container['lxd.tar.xz']).toEqual({ ...container['incus.tar.xz'], ftype: 'lxd.tar.xz' });
    expect(container['lxd.tar.xz']?.['combined_squashfs_sha256']).toBe(sha('a'));
    const vm = items(result, 'Crynux:bookworm:vm:amd64', '202601010001');
    expect(vm['lxd.tar.xz']).toEqual({
      ftype: 'lxd.tar.xz',
      path: `images/${sha('5')}.incus.tar.xz`,
      sha256: sha('5'),
      size: 476,
      'combined_disk-kvm-img_sha256': sha('c'),
    });
  });

  it('gives every incus_combined.tar.gz item an lxd_combined.tar.gz twin', () => {
    const unified = items(withLxdItems(sampleIndex()), 'Crynux:bookworm:unified:amd64', '202601010002');
    expect(unified['lxd_combined.tar.gz']).toEqual({
      ftype: 'lxd_combined.tar.gz',
      path: `images/${sha('d')}.incus_combined.tar.gz`,
      sha256: sha('d'),
      size: 4788,
    });
    expect(unified['lxd.tar.xz']).toBeUndefined();
  });

  it('adds no disk1.img item or combined_disk1-img_sha256 field (LXD would list the VM twice)', () => {
    const vm = items(withLxdItems(sampleIndex()), 'Crynux:bookworm:vm:amd64', '202601010001');
    expect(Object.keys(vm).sort()).toEqual(['disk-kvm.img', 'incus.tar.xz', 'lxd.tar.xz']);
    expect(JSON.stringify(vm)).not.toContain('disk1');
  });

  it('does not touch other items, versions, products or top-level fields', () => {
    const input = sampleIndex();
    const result = withLxdItems(input);
    const { products: _inputProducts, ...inputTop } = input;
    const { products: _resultProducts, ...resultTop } = result;
    expect(resultTop).toEqual(inputTop);
    expect(Object.keys(result.products)).toEqual(Object.keys(input.products));
    for (const [name, product] of Object.entries(input.products)) {
      const { versions, ...fields } = product;
      const { versions: resultVersions, ...resultFields } = result.products[name]!;
      expect(resultFields).toEqual(fields);
      expect(Object.keys(resultVersions)).toEqual(Object.keys(versions));
      for (const [serial, version] of Object.entries(versions)) {
        const resultItems = resultVersions[serial]!.items;
        for (const [key, item] of Object.entries(version.items)) expect(resultItems[key]).toEqual(item);
        const added = Object.keys(resultItems).filter((key) => !(key in version.items));
        expect(added.every((key) => key === 'lxd.tar.xz' || key === 'lxd_combined.tar.gz')).toBe(true);
      }
    }
  });

  it('leaves what the Incus side reads unchanged: fingerprints, types, sizes, referenced files', () => {
    const input = sampleIndex();
    const result = withLxdItems(input);
    for (const fingerprint of [sha('a'), sha('b'), sha('c'), sha('d'), sha('e')]) {
      expect(findFingerprint(result, fingerprint)).toEqual(findFingerprint(input, fingerprint));
    }
    expect(referencedPaths(result)).toEqual(referencedPaths(input));
  });

  it('does not change its input', () => {
    const input = sampleIndex();
    const before = JSON.parse(JSON.stringify(input)) as ImagesIndex;
    const result = withLxdItems(input);
    expect(input).toEqual(before);
    expect(result).not.toBe(input);
    // and the result shares no objects with the input
    result.products['Crynux:bookworm:node:amd64']!.versions['202601010000']!.items['incus.tar.xz']!.size = 1;
    expect(input).toEqual(before);
  });

  it('is idempotent', () => {
    const once = withLxdItems(sampleIndex());
    expect(withLxdItems(once)).toEqual(once);
    expect(withLxdItems(withLxdItems(once))).toEqual(once);
  });

  it('removes LXD items whose Incus item is gone', () => {
    const index = withLxdItems(sampleIndex());
    // as `incus-simplestreams remove` leaves a unified image: its Incus item gone, the LXD copy not
    delete items(index, 'Crynux:bookworm:unified:amd64', '202601010002')['incus_combined.tar.gz'];
    delete items(index, 'Crynux:bookworm:node:amd64', '202601010000')['incus.tar.xz'];
    const result = withLxdItems(index);
    expect(items(result, 'Crynux:bookworm:unified:amd64', '202601010002')).toEqual({});
    expect(Object.keys(items(result, 'Crynux:bookworm:node:amd64', '202601010000'))).toEqual(['squashfs']);
    // stray LXD items under other keys go too, and an lxd.tar.xz never survives without its source
    items(index, 'Crynux:bookworm:unified:amd64', '202601010002')['old'] = {
      ftype: 'lxd.tar.xz',
      path: 'images/gone.incus.tar.xz',
      sha256: sha('f'),
      size: 1,
    };
    expect(items(withLxdItems(index), 'Crynux:bookworm:unified:amd64', '202601010002')).toEqual({});
  });

  it('refreshes an LXD copy that no longer matches its Incus item (a replaced version)', () => {
    const index = withLxdItems(sampleIndex());
    const version = items(index, 'Crynux:bookworm:node:amd64', '202601020000');
    version['incus.tar.xz'] = {
      ftype: 'incus.tar.xz',
      path: `images/${sha('7')}.incus.tar.xz`,
      sha256: sha('7'),
      size: 500,
      combined_squashfs_sha256: sha('9'),
    };
    const refreshed = items(withLxdItems(index), 'Crynux:bookworm:node:amd64', '202601020000');
    expect(refreshed['lxd.tar.xz']).toEqual({ ...version['incus.tar.xz'], ftype: 'lxd.tar.xz' });
  });

  it('copes with an empty index and with versions without items', () => {
    expect(withLxdItems({ products: {} })).toEqual({ products: {} });
    const odd = { products: { p: { versions: { '202601010000': {} } } } } as unknown as ImagesIndex;
    expect(withLxdItems(odd)).toEqual(odd);
  });
});

describe('lxdWarnings', () => {
  it('warns that LXD cannot launch a unified VM image', () => {
    const warnings = lxdWarnings('virtual-machine', true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/LXD treats unified .* as containers/);
    expect(warnings[0]).toMatch(/split image/);
  });

  it('has nothing to say about split images and unified containers', () => {
    expect(lxdWarnings('container', false)).toEqual([]);
    expect(lxdWarnings('virtual-machine', false)).toEqual([]);
    expect(lxdWarnings('container', true)).toEqual([]);
  });
});

describe('markUnifiedVm', () => {
  it('marks the unified items of that fingerprint as virtual-machine, and nothing else', () => {
    const input = withLxdItems(sampleIndex());
    const before = JSON.parse(JSON.stringify(input)) as ImagesIndex;
    const result = markUnifiedVm(input, sha('e'));
    expect(input).toEqual(before);
    const vm = items(result, 'Crynux:bookworm:unifiedvm:amd64', '202601010003');
    expect(vm['incus_combined.tar.gz']?.['combined_type']).toBe('virtual-machine');
    expect(vm['lxd_combined.tar.gz']?.['combined_type']).toBe('virtual-machine');
    // everything else as it was
    const { 'Crynux:bookworm:unifiedvm:amd64': _marked, ...others } = result.products;
    const { 'Crynux:bookworm:unifiedvm:amd64': _unmarked, ...othersBefore } = before.products;
    expect(others).toEqual(othersBefore);
  });

  it('makes findFingerprint type the image as a virtual machine', () => {
    expect(findFingerprint(sampleIndex(), sha('e'))?.imageType).toBe('container');
    expect(findFingerprint(markUnifiedVm(sampleIndex(), sha('e')), sha('e'))?.imageType).toBe('virtual-machine');
  });

  it('is idempotent, survives withLxdItems either way round, and ignores unknown or split fingerprints', () => {
    const marked = markUnifiedVm(sampleIndex(), sha('e'));
    expect(markUnifiedVm(marked, sha('e'))).toEqual(marked);
    expect(withLxdItems(marked)).toEqual(markUnifiedVm(withLxdItems(sampleIndex()), sha('e')));
    expect(markUnifiedVm(sampleIndex(), sha('0'))).toEqual(sampleIndex());
    expect(markUnifiedVm(sampleIndex(), sha('a'))).toEqual(sampleIndex());
    const version = marked.products['Crynux:bookworm:unifiedvm:amd64']?.versions['202601010003'];
    expect(version && versionFingerprint(version)).toBe(sha('e'));
  });
});

describe('incusWarnings', () => {
  it('warns only for a unified VM image', () => {
    expect(incusWarnings('virtual-machine', true)).toHaveLength(1);
    expect(incusWarnings('virtual-machine', true)[0]).toMatch(/Incus clients up to 6\.0 .* as containers/);
    expect(incusWarnings('virtual-machine', false)).toEqual([]);
    expect(incusWarnings('container', true)).toEqual([]);
    expect(incusWarnings('container', false)).toEqual([]);
  });
});
