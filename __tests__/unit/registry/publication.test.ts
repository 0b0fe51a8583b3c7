// What every index the action writes gets (finishIndex): retention after a rollback, as the third
// review reproduced it. A publish of one line with keep-versions prunes only that line, and never
// the release a followed alias (latest) names.
import { describe, expect, it, jest } from '@jest/globals';
import { finishIndex } from '../../../src/registry/publication.js';
import { aliasTargets } from '../../../src/simplestreams/resolve.js';
import type { ImagesIndex } from '../../../src/simplestreams/images-index.js';
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
