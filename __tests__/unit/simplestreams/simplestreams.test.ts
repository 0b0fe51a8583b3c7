import { describe, expect, it } from '@jest/globals';
import { moveAliases, planAliasUpdate } from '../../../src/simplestreams/aliases.js';
import {
  buildStreamsIndex,
  emptyImagesIndex,
  findFingerprint,
  lineIdentity,
  productAliases,
  referencedPaths,
  serialFor,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsProduct,
} from '../../../src/simplestreams/images-index.js';
import { parseImagesIndex } from '../../../src/simplestreams/parse.js';
import {
  SerialConflictError,
  planPublication,
  stagedVersion,
  type StagedVersion,
} from '../../../src/simplestreams/plan.js';
import { applyRetention, DEFAULT_FOLLOWED_ALIASES, followedAliases } from '../../../src/simplestreams/retention.js';

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
      files: [
        { path: `images/${metaSha}.incus.tar.xz`, sha256: metaSha, size: 288, ftype: 'incus.tar.xz' },
        { path: `images/${metaSha}.squashfs`, sha256: 'c'.repeat(64), size: 4096, ftype: 'squashfs' },
      ],
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

describe('publication planning', () => {
  const item = (path: string, sha256: string, size: number, extra: Record<string, unknown> = {}) => ({
    ftype: path.endsWith('.squashfs') ? 'squashfs' : 'incus.tar.xz',
    path,
    sha256,
    size,
    ...extra,
  });
  /** A split container version whose files are named after `meta`, with fingerprint `fp`. */
  const version = (meta: string, fp: string) => ({
    items: {
      'incus.tar.xz': item(`images/${meta}.incus.tar.xz`, meta, 1, { combined_squashfs_sha256: fp }),
      squashfs: item(`images/${meta}.squashfs`, 'f'.repeat(64), 2),
    },
  });
  const product = (
    arch: string,
    aliases: string | undefined,
    versions: Record<string, ReturnType<typeof version>>,
  ) => ({
    arch,
    os: 'Crynux',
    release: 'bookworm',
    variant: 'node',
    ...(aliases === undefined ? {} : { aliases }),
    versions,
  });
  const fp = (c: string) => c.repeat(64);

  function live(): ImagesIndex {
    return {
      ...emptyImagesIndex(),
      products: {
        'Crynux:bookworm:node:amd64': product('amd64', 'crynux-node:latest,crynux-node:vA', {
          '202601010000': version('a1', fp('a')),
        }),
        'Crynux:bookworm:node:arm64': product('arm64', 'crynux-node:latest', {
          '202601010000': version('b1', fp('b')),
        }),
        'Crynux:trixie:node:amd64': product('amd64', undefined, {}),
      },
    };
  }
  const staged = (productName: string, serial: string, meta: string, fingerprint: string): StagedVersion => ({
    product: productName,
    // As incus-simplestreams writes them: the key is made of these fields.
    productFields: (([os, release, variant, arch]) => ({ arch, os, release, variant }))(productName.split(':')),
    serial,
    version: version(meta, fingerprint),
  });

  it('adds a release as a product of its own and moves the alias off other products of the same architecture only', () => {
    const before = live();
    const plan = planPublication(
      before,
      staged('Crynux:trixie:node:amd64', '202602010000', 'c1', fp('c')),
      fp('c'),
      ['crynux-node:latest', 'crynux-node:vC'],
      false,
    );
    expect(plan.status).toBe('published');
    expect(plan.retired).toEqual([]);
    const products = plan.index?.products ?? {};
    expect(products['Crynux:trixie:node:amd64:202602010000']?.aliases).toBe('crynux-node:latest,crynux-node:vC');
    expect(products['Crynux:trixie:node:amd64']).toEqual(live().products['Crynux:trixie:node:amd64']);
    expect(products['Crynux:bookworm:node:amd64']?.aliases).toBe('crynux-node:vA');
    expect(products['Crynux:bookworm:node:arm64']?.aliases).toBe('crynux-node:latest');
    expect(findFingerprint(plan.index as ImagesIndex, fp('c'))?.serial).toBe('202602010000');
    // the live index given is not changed
    expect(before).toEqual(live());
  });

  it('creates a product that does not exist yet, with the staged product fields', () => {
    const plan = planPublication(
      live(),
      staged('Crynux:sid:node:riscv64', '202603010000', 'd1', fp('d')),
      fp('d'),
      [],
      false,
    );
    expect(plan.index?.products['Crynux:sid:node:riscv64:202603010000']).toEqual({
      arch: 'riscv64',
      os: 'Crynux',
      release: 'sid',
      variant: 'node',
      versions: { '202603010000': version('d1', fp('d')) },
    });
  });

  it('is unchanged for a published fingerprint, writing only when aliases must move', () => {
    const already = staged('Crynux:bookworm:node:amd64', '202601010000', 'a1', fp('a'));
    expect(planPublication(live(), already, fp('a'), ['crynux-node:vA'], false)).toEqual({
      status: 'unchanged',
      retired: [],
    });
    const moved = planPublication(live(), already, fp('a'), ['crynux-node:stable'], false);
    expect(moved.status).toBe('unchanged');
    expect(moved.index?.products['Crynux:bookworm:node:amd64']?.aliases).toBe(
      'crynux-node:latest,crynux-node:vA,crynux-node:stable',
    );
    expect(planAliasUpdate(live(), fp('a'), ['crynux-node:latest'])).toBeUndefined();
    expect(planAliasUpdate(live(), fp('z'), ['x'])).toBeUndefined();
  });

  it('refuses another image under a published serial unless replace is set', () => {
    const other = staged('Crynux:bookworm:node:amd64', '202601010000', 'e1', fp('e'));
    expect(() => planPublication(live(), other, fp('e'), [], false)).toThrow(
      expect.objectContaining({
        product: 'Crynux:bookworm:node:amd64',
        serial: '202601010000',
        existingFingerprint: fp('a'),
      }),
    );
    const plan = planPublication(live(), other, fp('e'), [], true);
    expect(plan.status).toBe('replaced');
    expect(findFingerprint(plan.index as ImagesIndex, fp('a'))).toBeUndefined();
    // The replaced release's product was left empty: it goes, and the new release takes its aliases.
    expect(plan.index?.products['Crynux:bookworm:node:amd64']).toBeUndefined();
    expect(findFingerprint(plan.index as ImagesIndex, fp('e'))).toMatchObject({
      product: 'Crynux:bookworm:node:amd64:202601010000',
      aliases: ['crynux-node:latest', 'crynux-node:vA'],
    });
    expect(plan.retired.sort()).toEqual(['images/a1.incus.tar.xz', 'images/a1.squashfs']);
  });

  it('keeps a pinned alias on its release while latest moves, also back (a rollback)', () => {
    const line = 'Crynux:bookworm:node:amd64';
    const empty = { ...emptyImagesIndex(), products: {} };
    const a = staged(line, '202601010000', 'a1', fp('a'));
    const b = staged(line, '202602010000', 'b1', fp('b'));
    const afterA = planPublication(empty, a, fp('a'), ['crynux-node:v2.6.0', 'crynux-node:latest'], false).index;
    const afterB = planPublication(
      afterA as ImagesIndex,
      b,
      fp('b'),
      ['crynux-node:v2.7.0', 'crynux-node:latest'],
      false,
    ).index as ImagesIndex;
    const holder = (index: ImagesIndex, alias: string): string[] =>
      Object.entries(index.products)
        .filter(([, product]) => productAliases(product).includes(alias))
        .map(([key]) => key);
    expect(holder(afterB, 'crynux-node:v2.6.0')).toEqual([`${line}:202601010000`]);
    expect(holder(afterB, 'crynux-node:v2.7.0')).toEqual([`${line}:202602010000`]);
    expect(holder(afterB, 'crynux-node:latest')).toEqual([`${line}:202602010000`]);
    // Each release product holds one version: an alias resolves to exactly that release.
    for (const product of Object.values(afterB.products)) expect(Object.keys(product.versions)).toHaveLength(1);
    const rollback = planPublication(afterB, a, fp('a'), ['crynux-node:latest'], false);
    expect(rollback.status).toBe('unchanged');
    const afterRollback = rollback.index as ImagesIndex;
    expect(holder(afterRollback, 'crynux-node:latest')).toEqual([`${line}:202601010000`]);
    expect(holder(afterRollback, 'crynux-node:v2.7.0')).toEqual([`${line}:202602010000`]);
    expect(holder(afterRollback, 'crynux-node:v2.6.0')).toEqual([`${line}:202601010000`]);
  });

  it('counts a version in an older shared product as a release of its line', () => {
    // live() holds Crynux:bookworm:node:amd64 written the old way; a new build of that line with
    // the same serial clashes with it, a later serial becomes a release product of its own.
    const same = staged('Crynux:bookworm:node:amd64', '202601010000', 'z1', fp('z'));
    expect(() => planPublication(live(), same, fp('z'), [], false)).toThrow(SerialConflictError);
    const later = planPublication(
      live(),
      staged('Crynux:bookworm:node:amd64', '202601020000', 'z1', fp('z')),
      fp('z'),
      ['crynux-node:latest'],
      false,
    ).index as ImagesIndex;
    expect(productAliases(later.products['Crynux:bookworm:node:amd64'] as SimplestreamsProduct)).toEqual([
      'crynux-node:vA',
    ]);
    expect(findFingerprint(later, fp('z'))?.product).toBe('Crynux:bookworm:node:amd64:202601020000');
  });

  it('does not retire a file the new version names again', () => {
    // Same metadata tarball, different rootfs: the files keep their names.
    const sameNames = staged('Crynux:bookworm:node:amd64', '202601010000', 'a1', fp('e'));
    expect(planPublication(live(), sameNames, fp('e'), [], true).retired).toEqual([]);
  });
});

describe('stagedVersion', () => {
  it('takes the one version of a staging index, and refuses anything else', () => {
    const index = { ...emptyImagesIndex(), products: { p: { arch: 'amd64', versions: { s: { items: {} } } } } };
    expect(stagedVersion(index)).toEqual({
      product: 'p',
      productFields: { arch: 'amd64' },
      serial: 's',
      version: { items: {} },
    });
    expect(() => stagedVersion(emptyImagesIndex())).toThrow(/exactly one/);
  });
});

describe('buildStreamsIndex and referencedPaths', () => {
  it('lists the products, sorted, as incus-simplestreams writes index.json', () => {
    const index = { ...emptyImagesIndex(), products: { b: { versions: {} }, a: { versions: {} } } };
    expect(buildStreamsIndex(index)).toEqual({
      format: 'index:1.0',
      index: {
        images: {
          datatype: 'image-downloads',
          path: 'streams/v1/images.json',
          format: 'products:1.0',
          products: ['a', 'b'],
        },
      },
    });
  });

  it('collects every file path an index names', () => {
    expect([...referencedPaths(sampleIndex())].sort()).toEqual([
      `images/${metaSha}.incus.tar.xz`,
      `images/${metaSha}.squashfs`,
      'images/x.incus.tar.xz',
      'images/x.qcow2',
    ]);
  });
});

describe('applyRetention', () => {
  const version = (meta: string, fingerprint: string) => ({
    items: {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: `images/${meta}.incus.tar.xz`,
        sha256: meta,
        size: 1,
        combined_squashfs_sha256: fingerprint,
      },
      squashfs: { ftype: 'squashfs', path: `images/${meta}.squashfs`, sha256: 's', size: 1 },
    },
  });
  const index = (): ImagesIndex => ({
    ...emptyImagesIndex(),
    products: {
      node: {
        arch: 'amd64',
        aliases: 'crynux-node:latest',
        versions: {
          '1': version('m1', 'f1'),
          '2': version('m2', 'f2'),
          '3': version('m3', 'f3'),
          '4': version('m4', 'f4'),
        },
      },
      other: { arch: 'amd64', versions: { '1': version('o1', 'g1'), '2': version('o2', 'g2') } },
    },
  });

  const none = () => false;
  const retain = (on: ImagesIndex, keep: number, fingerprint: string, followed: (alias: string) => boolean = none) =>
    applyRetention(on, { keep, fingerprint, followed });

  it('keeps the newest N versions of the published line and retires the files of the others', () => {
    const result = retain(index(), 2, 'f4');
    expect(Object.keys(result.index.products['node']?.versions ?? {}).sort()).toEqual(['3', '4']);
    expect(Object.keys(result.index.products['other']?.versions ?? {}).sort()).toEqual(['1', '2']);
    expect(result.dropped).toEqual(['node 2', 'node 1']);
    expect(result.retired.sort()).toEqual([
      'images/m1.incus.tar.xz',
      'images/m1.squashfs',
      'images/m2.incus.tar.xz',
      'images/m2.squashfs',
    ]);
  });

  it('counts releases per image line, across release products and an older shared product', () => {
    const fields = { arch: 'amd64', os: 'Crynux', release: 'bookworm', variant: 'node' };
    const line = 'Crynux:bookworm:node:amd64';
    const releases: ImagesIndex = {
      ...emptyImagesIndex(),
      products: {
        [line]: { ...fields, aliases: 'crynux-node:v1', versions: { '202601010000': version('r1', 'f1') } },
        [`${line}:202602010000`]: {
          ...fields,
          aliases: 'crynux-node:v2',
          versions: { '202602010000': version('r2', 'f2') },
        },
        [`${line}:202603010000`]: {
          ...fields,
          aliases: 'crynux-node:v3,crynux-node:latest',
          versions: { '202603010000': version('r3', 'f3') },
        },
        'Crynux:bookworm:node:arm64:202601010000': {
          ...fields,
          arch: 'arm64',
          versions: { '202601010000': version('a1', 'g1') },
        },
      },
    };
    const result = retain(releases, 2, 'f3');
    expect(Object.keys(result.index.products).sort()).toEqual([
      `${line}:202602010000`,
      `${line}:202603010000`,
      'Crynux:bookworm:node:arm64:202601010000',
    ]);
    expect(result.dropped).toEqual([`${line} 202601010000`]);
    expect(result.retired.sort()).toEqual(['images/r1.incus.tar.xz', 'images/r1.squashfs']);
    expect(findFingerprint(result.index, 'f3')?.aliases).toEqual(['crynux-node:v3', 'crynux-node:latest']);
  });

  it('never drops the version just published, even with an older serial', () => {
    const result = retain(index(), 1, 'f1');
    expect(Object.keys(result.index.products['node']?.versions ?? {}).sort()).toEqual(['1', '4']);
  });

  it('leaves every other line alone', () => {
    const result = retain(index(), 1, 'g2');
    expect(result.dropped).toEqual(['other 1']);
    expect(Object.keys(result.index.products['node']?.versions ?? {})).toHaveLength(4);
  });

  it('never drops a release a followed alias names, and says so; pinned aliases go with their release', () => {
    const fields = { arch: 'amd64', os: 'Crynux', release: 'bookworm' };
    const release = (variant: string, serial: string, meta: string, fingerprint: string, aliases: string) => ({
      [`Crynux:bookworm:${variant}:amd64:${serial}`]: {
        ...fields,
        variant,
        aliases,
        versions: { [serial]: version(meta, fingerprint) },
      },
    });
    // After a rollback, latest names v1; v2 and v3 are newer. Then v4 is published with keep 2.
    const rolledBack: ImagesIndex = {
      ...emptyImagesIndex(),
      products: {
        ...release('node', '202601010000', 'n1', 'f1', 'crynux-node:v1,crynux-node:latest'),
        ...release('node', '202602010000', 'n2', 'f2', 'crynux-node:v2,crynux-node:latest-base'),
        ...release('node', '202603010000', 'n3', 'f3', 'crynux-node:v3'),
        ...release('node', '202604010000', 'n4', 'f4', 'crynux-node:v4'),
      },
    };
    const result = retain(rolledBack, 1, 'f4', followedAliases(DEFAULT_FOLLOWED_ALIASES));
    expect(result.keptForAliases).toEqual([
      {
        product: 'Crynux:bookworm:node:amd64:202602010000',
        serial: '202602010000',
        aliases: ['crynux-node:latest-base'],
      },
      { product: 'Crynux:bookworm:node:amd64:202601010000', serial: '202601010000', aliases: ['crynux-node:latest'] },
    ]);
    expect(result.dropped).toEqual(['Crynux:bookworm:node:amd64:202603010000 202603010000']);
    expect(findFingerprint(result.index, 'f1')?.aliases).toContain('crynux-node:latest');
    expect(findFingerprint(result.index, 'f3')).toBeUndefined();
    // Without followed aliases the count alone decides.
    expect(retain(rolledBack, 1, 'f4').dropped).toHaveLength(3);
  });

  it('retires no file that a kept version still names, and 0 keeps everything', () => {
    const shared = index();
    const node = shared.products['node'];
    if (node?.versions['4'])
      node.versions['4'].items['squashfs'] = { ftype: 'squashfs', path: 'images/m1.squashfs', sha256: 's', size: 1 };
    expect(retain(shared, 1, 'f4').retired).not.toContain('images/m1.squashfs');
    expect(retain(index(), 0, 'f4').dropped).toEqual([]);
  });
});

describe('image lines and architectures', () => {
  const release = (fields: Record<string, string>, aliases?: string) => ({
    ...fields,
    ...(aliases ? { aliases } : {}),
    versions: {},
  });

  it('treat amd64 and x86_64 as one architecture when moving an alias', () => {
    const index: ImagesIndex = {
      ...emptyImagesIndex(),
      products: {
        a: release({ os: 'o', release: 'r', variant: 'v', arch: 'amd64' }, 'latest'),
        b: release({ os: 'o', release: 'r', variant: 'v', arch: 'x86_64' }),
        c: release({ os: 'o', release: 'r', variant: 'v', arch: 'arm64' }, 'latest'),
      },
    };
    moveAliases(index, 'b', ['latest']);
    expect(index.products['a']?.aliases).toBeUndefined();
    expect(index.products['b']?.aliases).toBe('latest');
    expect(index.products['c']?.aliases).toBe('latest');
  });

  it('compare fields one by one: no value passes for another by holding a colon', () => {
    expect(lineIdentity('k1', { os: 'a:b', release: 'c', variant: 'v', arch: 'amd64' })).not.toBe(
      lineIdentity('k2', { os: 'a', release: 'b:c', variant: 'v', arch: 'amd64' }),
    );
    expect(lineIdentity('k1', { os: 'o', release: 'r', variant: 'v', arch: 'amd64' })).toBe(
      lineIdentity('k2', { os: 'o', release: 'r', variant: 'v', arch: 'x86_64' }),
    );
  });
});

describe('followedAliases', () => {
  it('matches the default latest aliases, by the whole alias or the part after its last colon', () => {
    const followed = followedAliases(DEFAULT_FOLLOWED_ALIASES);
    for (const alias of ['latest', 'latest-base', 'crynux-node:latest', 'crynux-node:latest-near', 'a:b:latest'])
      expect([alias, followed(alias)]).toEqual([alias, true]);
    for (const alias of [
      'crynux-node:v2.6.0',
      'crynux-node:stable',
      'latest:v1',
      'notlatest',
      'crynux-node:the-latest',
    ])
      expect([alias, followed(alias)]).toEqual([alias, false]);
  });

  it('takes patterns of its own, * for any characters and nothing else special', () => {
    const followed = followedAliases(['stable', 'crynux-node:edge-*', 'a.b']);
    expect(followed('crynux-node:stable')).toBe(true);
    expect(followed('crynux-node:edge-base')).toBe(true);
    expect(followed('crynux-node:latest')).toBe(false);
    expect(followed('a.b')).toBe(true);
    expect(followed('axb')).toBe(false);
  });
});
