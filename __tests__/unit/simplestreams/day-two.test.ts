import { describe, expect, it } from '@jest/globals';
import { emptyImagesIndex, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import { planAliasUpdate } from '../../../src/simplestreams/aliases.js';
import { planPublication } from '../../../src/simplestreams/plan.js';
import { planRemoval } from '../../../src/simplestreams/removal.js';
import { aliasTargets, resolveImage } from '../../../src/simplestreams/resolve.js';

const fp = (c: string) => c.repeat(64);
const version = (meta: string, fingerprint: string, extra: Record<string, unknown> = {}) => ({
  items: {
    'incus.tar.xz': {
      ftype: 'incus.tar.xz',
      path: `images/${meta}.incus.tar.xz`,
      sha256: meta,
      size: 1,
      combined_squashfs_sha256: fingerprint,
    },
    squashfs: { ftype: 'squashfs', path: `images/${meta}.squashfs`, sha256: meta, size: 2 },
    ...extra,
  },
});
const fields = (arch: string) => ({ arch, os: 'Crynux', release: 'bookworm', variant: 'node' });

function index(): ImagesIndex {
  return {
    ...emptyImagesIndex(),
    products: {
      'Crynux:bookworm:node:amd64:202601010000': {
        ...fields('amd64'),
        aliases: 'crynux-node:v1',
        versions: { '202601010000': version('a', fp('a')) },
      },
      'Crynux:bookworm:node:amd64:202602010000': {
        ...fields('amd64'),
        aliases: 'crynux-node:v2,crynux-node:latest',
        versions: { '202602010000': version('b', fp('b')) },
      },
      'Crynux:bookworm:node:arm64:202602010000': {
        ...fields('arm64'),
        aliases: 'crynux-node:latest',
        versions: { '202602010000': version('c', fp('c')) },
      },
      // Written the old way: one product, two versions, a delta from the older to the newer.
      'Crynux:bookworm:old:amd64': {
        ...fields('amd64'),
        variant: 'old',
        aliases: 'old:latest',
        versions: {
          '202501010000': version('d', fp('d')),
          '202502010000': version('e', fp('e'), {
            'squashfs.vcdiff': {
              ftype: 'squashfs.vcdiff',
              path: 'images/e.vcdiff',
              sha256: 'x',
              size: 1,
              delta_base: '202501010000',
            },
          }),
        },
      },
    },
  };
}

describe('resolveImage', () => {
  it('takes a fingerprint, a unique start of one, or an alias naming one image', () => {
    expect(resolveImage(index(), fp('b'))).toMatchObject({ kind: 'found', image: { fingerprint: fp('b') } });
    expect(resolveImage(index(), 'bbbbbbbbbbbb')).toMatchObject({ kind: 'found', image: { fingerprint: fp('b') } });
    expect(resolveImage(index(), 'crynux-node:v1')).toMatchObject({ kind: 'found', image: { fingerprint: fp('a') } });
    // The old product's alias names its newest version, as clients resolve it.
    expect(resolveImage(index(), 'old:latest')).toMatchObject({ kind: 'found', image: { fingerprint: fp('e') } });
  });

  it('tries an alias before a fingerprint, as the clients do, so an alias of hex digits stays reachable by name', () => {
    // incus image info and the daemons' image download look an alias up first (cmd/incus
    // image.go dereferenceAlias; the server's ImageDownload), then a fingerprint or its start.
    const withHexAlias = index();
    const product = withHexAlias.products['Crynux:bookworm:node:amd64:202601010000'];
    if (product) product.aliases = 'crynux-node:v1,bbbbbbbbbbbb';
    expect(resolveImage(withHexAlias, 'bbbbbbbbbbbb')).toMatchObject({
      kind: 'found',
      image: { fingerprint: fp('a') },
    });
    // Any other start of b's fingerprint still names b.
    expect(resolveImage(withHexAlias, 'bbbbbbbbbbbbb')).toMatchObject({
      kind: 'found',
      image: { fingerprint: fp('b') },
    });
  });

  it("refuses to guess when an alias is spelled as another image's whole fingerprint", () => {
    const withFingerprintAlias = index();
    const product = withFingerprintAlias.products['Crynux:bookworm:node:amd64:202601010000'];
    if (product) product.aliases = `crynux-node:v1,${fp('b')}`;
    const resolved = resolveImage(withFingerprintAlias, fp('b'));
    expect(resolved.kind).toBe('ambiguous');
    expect(resolved.kind === 'ambiguous' && resolved.candidates.map((image) => image.fingerprint)).toEqual([
      fp('a'),
      fp('b'),
    ]);
  });

  it('says when a reference is ambiguous or unknown', () => {
    const latest = resolveImage(index(), 'crynux-node:latest');
    expect(latest.kind).toBe('ambiguous');
    expect(latest.kind === 'ambiguous' && latest.candidates.map((image) => image.arch).sort()).toEqual([
      'amd64',
      'arm64',
    ]);
    expect(resolveImage(index(), 'aaaa')).toEqual({ kind: 'unknown' }); // too short for a fingerprint
    expect(resolveImage(index(), 'nope')).toEqual({ kind: 'unknown' });
  });
});

describe('planRemoval', () => {
  it('takes out a release product with its aliases and retires its files', () => {
    const plan = planRemoval(index(), fp('b'));
    expect(plan?.product).toBe('Crynux:bookworm:node:amd64:202602010000');
    expect(plan?.index.products['Crynux:bookworm:node:amd64:202602010000']).toBeUndefined();
    expect(plan?.removedAliases).toEqual(['crynux-node:v2', 'crynux-node:latest']);
    expect(plan?.retired.sort()).toEqual(['images/b.incus.tar.xz', 'images/b.squashfs']);
    const targets = aliasTargets(plan?.index as ImagesIndex);
    expect(targets.filter((target) => target.alias === 'crynux-node:latest').map((target) => target.arch)).toEqual([
      'arm64',
    ]);
  });

  it('in an old shared product, removes the version and any delta based on it; the aliases stay', () => {
    const plan = planRemoval(index(), fp('d'));
    const old = plan?.index.products['Crynux:bookworm:old:amd64'];
    expect(Object.keys(old?.versions ?? {})).toEqual(['202502010000']);
    expect(old?.versions['202502010000']?.items['squashfs.vcdiff']).toBeUndefined();
    expect(plan?.removedAliases).toEqual([]);
    expect(plan?.retired.sort()).toEqual(['images/d.incus.tar.xz', 'images/d.squashfs', 'images/e.vcdiff']);
  });

  it('in an old shared product, removing the newest version takes its aliases: they never fall back to an older one', () => {
    const plan = planRemoval(index(), fp('e'));
    expect(plan?.removedAliases).toEqual(['old:latest']);
    const old = plan?.index.products['Crynux:bookworm:old:amd64'];
    expect(Object.keys(old?.versions ?? {})).toEqual(['202501010000']);
    expect(old?.aliases).toBeUndefined();
  });

  it('is undefined for a fingerprint not in the index, and leaves the index given alone', () => {
    const before = index();
    expect(planRemoval(before, fp('z'))).toBeUndefined();
    planRemoval(before, fp('a'));
    expect(before).toEqual(index());
  });
});

describe('a product written the old way (one product, several versions)', () => {
  it('an alias put on an older version goes with that version into a product of its own', () => {
    const next = planAliasUpdate(index(), fp('d'), ['old:latest']) as ImagesIndex;
    const targets = aliasTargets(next).filter((target) => target.alias === 'old:latest');
    expect(targets.map((target) => target.fingerprint)).toEqual([fp('d')]);
    expect(next.products['Crynux:bookworm:old:amd64:202501010000']?.versions['202501010000']).toBeDefined();
    expect(Object.keys(next.products['Crynux:bookworm:old:amd64']?.versions ?? {})).toEqual(['202502010000']);
  });

  it("replacing its newest version hands that version's aliases to the new release", () => {
    const staged = {
      product: 'Crynux:bookworm:old:amd64',
      productFields: { ...fields('amd64'), variant: 'old' },
      serial: '202502010000',
      version: version('n', fp('n')),
    };
    const plan = planPublication(index(), staged, fp('n'), [], true);
    const targets = aliasTargets(plan.index as ImagesIndex).filter((target) => target.alias === 'old:latest');
    expect(targets.map((target) => target.fingerprint)).toEqual([fp('n')]);
  });
});
