// keep-versions for images whose release is their version (release-is-version), beside the
// distribution-image rule it leaves as it was.
import { describe, expect, it } from '@jest/globals';
import { emptyImagesIndex, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import { applyRetention, followedAliases } from '../../../src/simplestreams/retention.js';

const fp = (c: string) => c.repeat(64);
const version = (name: string, fingerprint: string) => ({
  items: {
    'incus.tar.xz': {
      ftype: 'incus.tar.xz',
      path: `images/${name}.incus.tar.xz`,
      sha256: name,
      size: 1,
      combined_squashfs_sha256: fingerprint,
    },
    squashfs: { ftype: 'squashfs', path: `images/${name}.squashfs`, sha256: name, size: 2 },
  },
});

/** A crynux-node style registry: releases named as versions, one product each, per chain. */
function crynux(releases: { release: string; chain: string; serial: string; id: string; aliases?: string }[]) {
  const index: ImagesIndex = emptyImagesIndex();
  for (const { release, chain, serial, id, aliases } of releases) {
    const key = `crynux-node:${release}:${chain}:amd64:${serial}`;
    index.products[key] = {
      arch: 'amd64',
      os: 'crynux-node',
      release,
      variant: chain,
      ...(aliases ? { aliases } : {}),
      versions: { [serial]: version(id, fp(id)) },
    };
  }
  return index;
}

const followed = followedAliases(['latest*']);
const kept = (index: ImagesIndex) => Object.keys(index.products).sort();

describe('keep-versions with release-is-version', () => {
  // Release names that sort the wrong way as strings (v10 before v9): only creation dates count.
  const registry = () =>
    crynux([
      { release: 'v9.0.0', chain: 'base', serial: '202601010000', id: '1' },
      { release: 'v10.0.0', chain: 'base', serial: '202602010000', id: '2' },
      { release: 'v10.1.0', chain: 'base', serial: '202603010000', id: '3', aliases: 'crynux-node:latest-base' },
      { release: 'v9.0.0', chain: 'near', serial: '202601010000', id: '4' },
      { release: 'v10.0.0', chain: 'near', serial: '202602010000', id: '5', aliases: 'crynux-node:latest-near' },
    ]);

  it('keeps the newest N releases of the chain published, by creation date, and leaves other chains alone', () => {
    const result = applyRetention(registry(), { keep: 2, fingerprint: fp('3'), followed, releaseIsVersion: true });
    expect(result.dropped).toEqual(['crynux-node:v9.0.0:base:amd64:202601010000 202601010000']);
    expect(kept(result.index)).toEqual([
      'crynux-node:v10.0.0:base:amd64:202602010000',
      'crynux-node:v10.0.0:near:amd64:202602010000',
      'crynux-node:v10.1.0:base:amd64:202603010000',
      'crynux-node:v9.0.0:near:amd64:202601010000',
    ]);
    expect(result.retired.sort()).toEqual(['images/1.incus.tar.xz', 'images/1.squashfs']);
  });

  it('drops nothing without it: every release is a line of its own', () => {
    const result = applyRetention(registry(), { keep: 2, fingerprint: fp('3'), followed });
    expect(result.dropped).toEqual([]);
  });

  it('keeps one build of each release, the newest, and counts a release once however often it was built', () => {
    const index = registry();
    const v10 = index.products['crynux-node:v10.1.0:base:amd64:202603010000'];
    if (!v10) throw new Error('fixture');
    // v10.1.0 built again (a newer creation date) into the same product.
    v10.versions['202603020000'] = version('6', fp('6'));
    const result = applyRetention(index, { keep: 2, fingerprint: fp('6'), followed, releaseIsVersion: true });
    expect(result.dropped.sort()).toEqual([
      'crynux-node:v10.1.0:base:amd64:202603010000 202603010000',
      'crynux-node:v9.0.0:base:amd64:202601010000 202601010000',
    ]);
    expect(Object.keys(result.index.products['crynux-node:v10.1.0:base:amd64:202603010000']?.versions ?? {})).toEqual([
      '202603020000',
    ]);
    expect(result.index.products['crynux-node:v10.0.0:base:amd64:202602010000']).toBeDefined();
  });

  it('keeps a release a followed alias names (latest-base rolled back), and the release just published', () => {
    const index = registry();
    // latest-base rolled back to v9.0.0, then v10.1.0 published again without it.
    const v9 = index.products['crynux-node:v9.0.0:base:amd64:202601010000'];
    const v101 = index.products['crynux-node:v10.1.0:base:amd64:202603010000'];
    if (!v9 || !v101) throw new Error('fixture');
    v9.aliases = 'crynux-node:latest-base';
    delete v101.aliases;
    const result = applyRetention(index, { keep: 1, fingerprint: fp('2'), followed, releaseIsVersion: true });
    // v10.0.0 was just published (an older creation date than v10.1.0): kept; v10.1.0 is the newest.
    expect(result.dropped).toEqual([]);
    expect(result.keptForAliases).toEqual([
      {
        product: 'crynux-node:v9.0.0:base:amd64:202601010000',
        serial: '202601010000',
        aliases: ['crynux-node:latest-base'],
      },
    ]);
  });
});
