import { describe, expect, it } from '@jest/globals';
import { aliasConflicts, indexFindings, repairIndex } from '../../../src/simplestreams/health.js';
import { buildStreamsIndex, emptyImagesIndex, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import { withLxdItems } from '../../../src/simplestreams/lxd.js';
import { aliasTargets } from '../../../src/simplestreams/resolve.js';

const fp = (c: string) => c.repeat(64);
const version = (meta: string, fingerprint: string, extra: Record<string, unknown> = {}) => ({
  items: {
    'incus.tar.xz': {
      ftype: 'incus.tar.xz',
      path: `images/${meta}.incus.tar.xz`,
      sha256: fp(meta),
      size: 1,
      combined_squashfs_sha256: fingerprint,
    },
    squashfs: { ftype: 'squashfs', path: `images/${meta}.squashfs`, sha256: fp(meta), size: 2 },
    ...extra,
  },
});
const fields = (release: string, arch = 'amd64') => ({ arch, os: 'crynux-node', release, variant: 'near' });

/**
 * As `incus-simplestreams add --alias crynux-node:latest-near` leaves it after three releases
 * whose release is their version: the alias on each product. The product keys sort the other way
 * round from the creation dates (v3.10.0 sorts before v3.9.0), so that a rule by key would pick wrong.
 */
function oldWay(): ImagesIndex {
  return {
    ...emptyImagesIndex(),
    products: {
      'crynux-node:v3.9.0:near:amd64': {
        ...fields('v3.9.0'),
        aliases: 'crynux-node:v3.9.0-near,crynux-node:latest-near',
        versions: { '202601010000': version('a', fp('a')) },
      },
      'crynux-node:v3.10.0:near:amd64': {
        ...fields('v3.10.0'),
        aliases: 'crynux-node:v3.10.0-near,crynux-node:latest-near',
        versions: { '202603010000': version('b', fp('b')) },
      },
      'crynux-node:v3.8.0:near:amd64': {
        ...fields('v3.8.0'),
        aliases: 'crynux-node:latest-near',
        versions: { '202512010000': version('c', fp('c')) },
      },
      // Another architecture holds the alias too: that is no conflict.
      'crynux-node:v3.9.0:near:arm64': {
        ...fields('v3.9.0', 'arm64'),
        aliases: 'crynux-node:latest-near',
        versions: { '202601010000': version('d', fp('d')) },
      },
    },
  };
}

/** A delta on v3.9.0 from a version its product does not have. */
function addDeltaWithoutBase(index: ImagesIndex): void {
  const v39 = index.products['crynux-node:v3.9.0:near:amd64']?.versions['202601010000'];
  if (!v39) throw new Error('no v3.9.0');
  v39.items['delta-202001010000'] = {
    ftype: 'squashfs.vcdiff',
    path: 'images/x.vcdiff',
    sha256: fp('9'),
    size: 1,
    delta_base: '202001010000',
  };
}

const healthy = (index: ImagesIndex) => ({ lxdCompat: true, streamsIndex: buildStreamsIndex(index) });

describe('aliasConflicts', () => {
  it('finds an alias on several products of one architecture, the newest holder by creation date', () => {
    expect(aliasConflicts(oldWay())).toEqual([
      {
        alias: 'crynux-node:latest-near',
        arch: 'x86_64',
        type: 'container',
        holders: ['crynux-node:v3.10.0:near:amd64', 'crynux-node:v3.9.0:near:amd64', 'crynux-node:v3.8.0:near:amd64'],
        newest: 'crynux-node:v3.10.0:near:amd64',
      },
    ]);
  });

  it('counts amd64 and x86_64 as one architecture, and a product of delta bases only as no holder', () => {
    const index = oldWay();
    const arm = index.products['crynux-node:v3.9.0:near:arm64'];
    if (arm) arm.arch = 'aarch64';
    index.products['crynux-node:v3.9.0:near:x86_64'] = {
      ...fields('v3.9.0', 'x86_64'),
      aliases: 'crynux-node:v3.9.0-near',
      versions: { '202601010000': version('e', fp('e')) },
    };
    index.products['stub'] = {
      ...fields('v0', 'amd64'),
      aliases: 'crynux-node:latest-near',
      versions: { '202001010000': { items: { 'incus.tar.xz': version('f', fp('f')).items['incus.tar.xz'] } } },
    };
    const aliases = aliasConflicts(index).map((conflict) => [conflict.alias, conflict.holders.length]);
    expect(aliases).toEqual([
      ['crynux-node:latest-near', 3],
      ['crynux-node:v3.9.0-near', 2],
    ]);
  });

  it('leaves a container and a VM alone that share an alias: clients key aliases by type too', () => {
    const index = oldWay();
    const v38 = index.products['crynux-node:v3.8.0:near:amd64'];
    const version = v38?.versions['202512010000'];
    if (!version) throw new Error('no v3.8.0');
    version.items['disk-kvm.img'] = { ftype: 'disk-kvm.img', path: 'images/c.qcow2', sha256: fp('7'), size: 3 };
    delete version.items['squashfs'];
    expect(aliasConflicts(index).map((conflict) => [conflict.type, conflict.holders.length])).toEqual([
      ['container', 2],
    ]);
    const repaired = repairIndex(index, { lxdCompat: false }).index as ImagesIndex;
    expect(repaired.products['crynux-node:v3.8.0:near:amd64']?.aliases).toBe('crynux-node:latest-near');
  });
});

describe('indexFindings', () => {
  it('finds nothing in an index the action would write', () => {
    const index = withLxdItems(repairIndex(oldWay(), { lxdCompat: true }).index ?? oldWay());
    expect(indexFindings(index, healthy(index))).toEqual([]);
  });

  it('finds the alias, the LXD items, a delta without its base and index.json out of step', () => {
    const index = oldWay();
    addDeltaWithoutBase(index);
    const kinds = (streamsIndex: unknown, lxdCompat = true) => [
      ...new Set(indexFindings(index, { lxdCompat, streamsIndex }).map((finding) => finding.kind)),
    ];
    expect(kinds(buildStreamsIndex(index))).toEqual([
      'alias-on-several-releases',
      'missing-lxd-items',
      'delta-without-base',
    ]);
    expect(kinds(buildStreamsIndex(index), false)).not.toContain('missing-lxd-items');
    expect(kinds(undefined)).toContain('streams-index-out-of-step');
    expect(kinds({ ...buildStreamsIndex(emptyImagesIndex()) })).toContain('streams-index-out-of-step');
  });

  it('takes an index.json listing the same products in another order as in step', () => {
    const index = withLxdItems(oldWay());
    const streams = buildStreamsIndex(index) as { index: { images: { products: string[] } } };
    streams.index.images.products.reverse();
    expect(indexFindings(index, { lxdCompat: true, streamsIndex: streams }).map((f) => f.kind)).toEqual([
      'alias-on-several-releases',
    ]);
  });

  it('quotes an alias that is not plain in what it reports', () => {
    const index = oldWay();
    for (const product of Object.values(index.products)) product.aliases = 'evil\n::error::x';
    const [finding] = indexFindings(index, { lxdCompat: false, streamsIndex: buildStreamsIndex(index) });
    expect(finding?.subject).toBe('"evil\\n::error::x" (x86_64)');
  });
});

describe('repairIndex', () => {
  it('leaves each alias on its newest holder, adds the LXD items and drops deltas without a base', () => {
    const index = oldWay();
    addDeltaWithoutBase(index);
    const before = JSON.stringify(index);
    const repaired = repairIndex(index, { lxdCompat: true });
    expect(JSON.stringify(index)).toBe(before);
    expect(repaired.retired).toEqual(['images/x.vcdiff']);
    const after = repaired.index as ImagesIndex;
    expect(aliasTargets(after).filter((target) => target.alias === 'crynux-node:latest-near')).toEqual([
      {
        alias: 'crynux-node:latest-near',
        arch: 'amd64',
        fingerprint: fp('b'),
        product: 'crynux-node:v3.10.0:near:amd64',
        serial: '202603010000',
        type: 'container',
      },
      {
        alias: 'crynux-node:latest-near',
        arch: 'arm64',
        fingerprint: fp('d'),
        product: 'crynux-node:v3.9.0:near:arm64',
        serial: '202601010000',
        type: 'container',
      },
    ]);
    // The version aliases stay where they were.
    expect(after.products['crynux-node:v3.9.0:near:amd64']?.aliases).toBe('crynux-node:v3.9.0-near');
    expect(after.products['crynux-node:v3.8.0:near:amd64']?.aliases).toBeUndefined();
    expect(indexFindings(after, healthy(after))).toEqual([]);
    // Nothing left to do the second time.
    expect(repairIndex(after, { lxdCompat: true })).toEqual({ retired: [] });
  });
});
