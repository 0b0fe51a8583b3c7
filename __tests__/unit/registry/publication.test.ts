// What every index the action writes gets (finishIndex): retention after a rollback, as the third
// review reproduced it. A publish of one line with keep-versions prunes only that line, and never
// the release a followed alias (latest) names.
import { describe, expect, it, jest } from '@jest/globals';
import { finishIndex, logAliasMoves, previewPublication } from '../../../src/registry/publication.js';
import { parseImagesIndex } from '../../../src/simplestreams/parse.js';
import { predictedVersion } from '../../../src/simplestreams/plan.js';
import { aliasMoves, aliasTargets } from '../../../src/simplestreams/resolve.js';
import { findFingerprint, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import { DEFAULT_FOLLOWED_ALIASES, followedAliases } from '../../../src/simplestreams/retention.js';

const hex = (c: string, i: number) => c.repeat(60) + String(i).padStart(4, '0');
function release(variant: string, serial: string, i: number, aliases?: string) {
  return {
    [`Crynux:bookworm:${variant}:amd64:${serial}`]: {
      ...(aliases ? { aliases } : {}),
      arch: 'amd64',
      os: 'Crynux',
      release: 'bookworm',
      variant,
      versions: {
        [serial]: {
          items: {
            'incus.tar.xz': {
              ftype: 'incus.tar.xz',
              path: `images/${hex('b', i)}.incus.tar.xz`,
              sha256: hex('b', i),
              size: 1,
              combined_squashfs_sha256: hex('a', i),
            },
            squashfs: { ftype: 'squashfs', path: `images/${hex('b', i)}.squashfs`, sha256: hex('c', i), size: 1 },
          },
        },
      },
    },
  };
}

/** crynux-node v1 carries latest after a rollback; v2 and v3 are newer; another line, v1. */
const rolledBack = (): ImagesIndex => ({
  content_id: 'images',
  datatype: 'image-downloads',
  format: 'products:1.0',
  products: {
    ...release('node', '202601010000', 1, 'crynux-node:v1,crynux-node:latest'),
    ...release('node', '202602010000', 2, 'crynux-node:v2'),
    ...release('node', '202603010000', 3, 'crynux-node:v3'),
    ...release('other', '202604010000', 4, 'other:v1'),
  },
});
const options = { keepVersions: 2, lxdCompat: false, followedAliases: followedAliases(DEFAULT_FOLLOWED_ALIASES) };
const aliases = (index: ImagesIndex) => aliasTargets(index).map((target) => target.alias);

describe('retention after a rollback', () => {
  it('a publish of another line leaves this line alone', () => {
    const index = rolledBack();
    const out = finishIndex(options, hex('a', 4), index, undefined);
    expect(out.index).toBeUndefined(); // nothing to change
    expect(out.retired).toEqual([]);
  });

  it('a publish of this line keeps the release latest names beyond N, and says why', () => {
    const index = rolledBack();
    Object.assign(index.products, release('node', '202605010000', 5, 'crynux-node:v5'));
    const logged: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(chunk.toString());
      return true;
    });
    try {
      const out = finishIndex(options, hex('a', 5), index, undefined);
      expect(aliases(out.index!)).toEqual([
        'crynux-node:latest',
        'crynux-node:v1',
        'crynux-node:v3',
        'crynux-node:v5',
        'other:v1',
      ]);
      expect(out.retired.sort()).toEqual([`images/${hex('b', 2)}.incus.tar.xz`, `images/${hex('b', 2)}.squashfs`]);
      expect(logged.join('')).toMatch(
        /keep-versions 2: keeping Crynux:bookworm:node:amd64:202601010000 version 202601010000 beyond the newest 2: crynux-node:latest \(followed-aliases\) names it/,
      );
    } finally {
      write.mockRestore();
    }
  });
});

/** A quiet previewPublication: finishIndex logs to stdout. */
function quietly<T>(work: () => T): T {
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    return work();
  } finally {
    write.mockRestore();
  }
}

const staged = (fingerprint: string, serial: string) =>
  predictedVersion({
    os: 'Crynux',
    release: 'bookworm',
    variant: 'node',
    architecture: 'amd64',
    serial,
    fingerprint,
    imageType: 'container',
    data: 'squashfs',
    size: 2,
  });

describe('aliasMoves', () => {
  it('names each alias that resolves elsewhere, with where it was and where it goes', () => {
    const before = rolledBack();
    const after = structuredClone(before);
    const products = after.products as Record<string, { aliases?: string }>;
    products['Crynux:bookworm:node:amd64:202601010000']!.aliases = 'crynux-node:v1';
    products['Crynux:bookworm:node:amd64:202603010000']!.aliases = 'crynux-node:v3,crynux-node:latest,crynux-node:new';
    products['Crynux:bookworm:other:amd64:202604010000']!.aliases = undefined;
    expect(aliasMoves(before, after)).toEqual([
      {
        alias: 'crynux-node:latest',
        architecture: 'x86_64',
        type: 'container',
        from: { product: 'Crynux:bookworm:node:amd64:202601010000', serial: '202601010000', fingerprint: hex('a', 1) },
        to: { product: 'Crynux:bookworm:node:amd64:202603010000', serial: '202603010000', fingerprint: hex('a', 3) },
      },
      {
        alias: 'crynux-node:new',
        architecture: 'x86_64',
        type: 'container',
        from: null,
        to: { product: 'Crynux:bookworm:node:amd64:202603010000', serial: '202603010000', fingerprint: hex('a', 3) },
      },
      {
        alias: 'other:v1',
        architecture: 'x86_64',
        type: 'container',
        from: { product: 'Crynux:bookworm:other:amd64:202604010000', serial: '202604010000', fingerprint: hex('a', 4) },
        to: null,
      },
    ]);
    expect(aliasMoves(before, structuredClone(before))).toEqual([]);
  });
});

describe('previewPublication (dry-run)', () => {
  const publication = (fingerprint: string, aliasList: string[], keepVersions = 2) => ({
    fingerprint,
    aliases: aliasList,
    options: { ...options, keepVersions, replace: false, releaseIsVersion: false, convertCommand: '', lockTimeout: 1 },
  });

  it('a new release: published, latest would move from the rolled-back release, retention would drop one', () => {
    const live = rolledBack();
    const planned = quietly(() =>
      previewPublication(
        publication(hex('a', 9), ['crynux-node:v9', 'crynux-node:latest']),
        { kind: 'staged', dir: '', version: staged(hex('a', 9), '202609010000') },
        live,
      ),
    );
    expect(planned.status).toBe('published');
    expect(planned.moves.map((move) => [move.alias, move.from?.serial ?? null, move.to?.serial ?? null])).toEqual([
      ['crynux-node:latest', '202601010000', '202609010000'],
      // Pinned aliases go with the releases retention drops: said, not hidden.
      ['crynux-node:v1', '202601010000', null],
      ['crynux-node:v2', '202602010000', null],
      ['crynux-node:v9', null, '202609010000'],
    ]);
    // latest leaves v1, so v1 and v2 fall out of the newest two (v9, v3).
    expect(planned.dropped.sort()).toEqual([
      'Crynux:bookworm:node:amd64:202601010000 202601010000',
      'Crynux:bookworm:node:amd64:202602010000 202602010000',
    ]);
    expect(live).toEqual(rolledBack()); // the live index is not touched
  });

  it('moving latest onto a release already published is aliases-updated; again, unchanged', () => {
    const live = rolledBack();
    const planned = quietly(() =>
      previewPublication(publication(hex('a', 3), ['crynux-node:latest']), { kind: 'aliases' }, live),
    );
    expect(planned.status).toBe('aliases-updated');
    // With latest gone from v1, keep-versions 2 drops it, and its pinned alias with it.
    expect(planned.moves.map((move) => [move.alias, move.from?.serial ?? null, move.to?.serial ?? null])).toEqual([
      ['crynux-node:latest', '202601010000', '202603010000'],
      ['crynux-node:v1', '202601010000', null],
    ]);
    expect(planned.dropped).toEqual(['Crynux:bookworm:node:amd64:202601010000 202601010000']);
    const again = quietly(() =>
      previewPublication(publication(hex('a', 3), ['crynux-node:latest']), { kind: 'aliases' }, planned.index),
    );
    expect(again).toMatchObject({ status: 'unchanged', moves: [], dropped: [] });
  });

  it('the predicted version carries the fingerprint and type the clients would compute', () => {
    const vm = predictedVersion({
      os: 'Crynux',
      release: 'bookworm',
      variant: 'node',
      architecture: 'amd64',
      serial: '202609010000',
      fingerprint: hex('e', 1),
      imageType: 'virtual-machine',
      data: 'qcow2',
      size: 5,
    });
    const index = {
      ...rolledBack(),
      products: { [vm.product]: { ...vm.productFields, versions: { [vm.serial]: vm.version } } },
    };
    expect(aliasTargets(index)).toEqual([]);
    const unified = predictedVersion({
      ...{ os: 'Crynux', release: 'bookworm', variant: 'node', architecture: 'amd64', serial: '202609010000' },
      ...{ fingerprint: hex('f', 1), imageType: 'container', data: 'unified', size: 3 },
    });
    expect(vm.product).toBe('Crynux:bookworm:node:amd64');
    for (const [version, fingerprint, type] of [
      [vm, hex('e', 1), 'virtual-machine'],
      [unified, hex('f', 1), 'container'],
    ] as const) {
      const one = { ...rolledBack(), products: { p: { ...version.productFields, versions: { s: version.version } } } };
      expect(findFingerprint(one, fingerprint)).toMatchObject({ product: 'p', imageType: type });
    }
  });
});

describe('alias moves, as a review attacked them', () => {
  const publication = (fingerprint: string, aliasList: string[], keepVersions: number) => ({
    fingerprint,
    aliases: aliasList,
    options: { ...options, keepVersions, replace: false, releaseIsVersion: false, convertCommand: '', lockTimeout: 1 },
  });
  const withAliases = (...products: ImagesIndex['products'][]): ImagesIndex => ({
    ...rolledBack(),
    products: Object.assign({}, ...products) as ImagesIndex['products'],
  });

  it('prints a fingerprint read from the index escaped: a line break in it cannot start a workflow command', () => {
    const hostile = release('node', '202601010000', 1, 'app:latest');
    const items = Object.values(hostile)[0]!.versions['202601010000']!.items as Record<string, Record<string, unknown>>;
    items['incus.tar.xz']!['combined_squashfs_sha256'] = '\n::error::pwn';
    const live = parseImagesIndex(JSON.stringify(withAliases(hostile)));
    const planned = quietly(() =>
      previewPublication(
        publication(hex('a', 9), ['app:latest'], 0),
        { kind: 'staged', dir: '', version: staged(hex('a', 9), '202609010000') },
        live,
      ),
    );
    const logged: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(chunk.toString());
      return true;
    });
    try {
      logAliasMoves(planned.moves, 'Would move');
    } finally {
      write.mockRestore();
    }
    expect(logged.join('')).toContain('Would move alias app:latest (x86_64): from');
    expect(
      logged
        .join('')
        .split('\n')
        .filter((line) => line.startsWith('::')),
    ).toEqual([]);
  });

  it('is unchanged, not aliases-updated, when retention only took a pinned alias with a dropped release', () => {
    const live = withAliases(
      release('node', '202601010000', 1, 'app:v1'),
      release('node', '202602010000', 2, 'app:v2,app:latest'),
    );
    const planned = quietly(() =>
      previewPublication(publication(hex('a', 2), ['app:v2', 'app:latest'], 1), { kind: 'aliases' }, live),
    );
    expect(planned.status).toBe('unchanged');
    expect(planned.moves.map((move) => [move.alias, move.to])).toEqual([['app:v1', null]]);
  });

  it('reports an alias taken off a VM of the same architecture beside the container it leaves', () => {
    const vm = release('vm', '202601010000', 2, 'app:latest');
    const items = Object.values(vm)[0]!.versions['202601010000']!.items as Record<string, Record<string, unknown>>;
    const metadata = items['incus.tar.xz']!;
    delete metadata['combined_squashfs_sha256'];
    metadata['combined_disk-kvm-img_sha256'] = hex('a', 2);
    items['disk-kvm.img'] = { ...items['squashfs'], ftype: 'disk-kvm.img' };
    delete items['squashfs'];
    const live = withAliases(release('node', '202601010000', 1, 'app:latest'), vm);
    const planned = quietly(() =>
      previewPublication(
        publication(hex('a', 9), ['app:latest'], 0),
        { kind: 'staged', dir: '', version: staged(hex('a', 9), '202609010000') },
        live,
      ),
    );
    expect(planned.moves.map((move) => [move.type, move.from?.fingerprint, move.to?.fingerprint ?? null])).toEqual([
      ['container', hex('a', 1), hex('a', 9)],
      ['virtual-machine', hex('a', 2), null],
    ]);
  });
});
