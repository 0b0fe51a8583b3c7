import { describe, expect, it } from '@jest/globals';
import { namedFiles, nextBucketRetired, planSync, retiredEntries, UPLOADS_FOLDER } from '../../../src/bucket/sync.js';
import type { ImagesIndex } from '../../../src/simplestreams/images-index.js';

const sha = (c: string): string => c.repeat(64);

function index(items: Record<string, { path: string; sha256: string; size: number }>[]): ImagesIndex {
  return {
    products: {
      'p:1:default:amd64': {
        versions: Object.fromEntries(
          items.map((version, k) => [
            `20260101000${k}`,
            { items: Object.fromEntries(Object.entries(version).map(([key, item]) => [key, { ftype: key, ...item }])) },
          ]),
        ),
      },
    },
  };
}

const now = new Date('2026-12-06T12:00:00Z');
const hoursAgo = (hours: number): Date => new Date(now.getTime() - hours * 3600 * 1000);

describe('namedFiles', () => {
  it('lists each file once (the LXD items share the Incus items’ files)', () => {
    const files = namedFiles(
      index([
        {
          'incus.tar.xz': { path: 'images/a.incus.tar.xz', sha256: sha('a'), size: 10 },
          'lxd.tar.xz': { path: 'images/a.incus.tar.xz', sha256: sha('a'), size: 10 },
          squashfs: { path: 'images/a.squashfs', sha256: sha('b'), size: 20 },
        },
      ]),
    );
    expect(files).toEqual([
      { path: 'images/a.incus.tar.xz', sha256: sha('a'), size: 10 },
      { path: 'images/a.squashfs', sha256: sha('b'), size: 20 },
    ]);
  });

  it.each([
    ['../streams/v1/index.json', sha('a'), 1],
    ['images/../../etc/passwd', sha('a'), 1],
    ['images/a b', sha('a'), 1],
    ['images/a', 'not-a-hash', 1],
    ['images/a', sha('a'), -1],
    ['images/a', sha('a'), 1.5],
  ])('refuses an index naming %s (%s, %s)', (path, sha256, size) => {
    expect(() => namedFiles(index([{ x: { path, sha256, size } }]))).toThrow(/cannot hold/);
  });

  it('refuses a path named with two hashes', () => {
    expect(() =>
      namedFiles(
        index([
          { x: { path: 'images/a', sha256: sha('a'), size: 1 } },
          { x: { path: 'images/a', sha256: sha('b'), size: 1 } },
        ]),
      ),
    ).toThrow(/two different hashes/);
  });
});

describe('retired lists', () => {
  it('reads "<seconds> images/<name>" lines and leaves out lines of another form', () => {
    const text = [
      '60 images/a.squashfs',
      '61 images/../escape',
      '62 streams/v1/images.json',
      'garbage',
      '63 images/b',
    ].join('\n');
    expect(retiredEntries(text)).toEqual([
      { at: 60, path: 'images/a.squashfs' },
      { at: 63, path: 'images/b' },
    ]);
  });

  it("starts a bucket's own grace when its index stops naming a file, and ends it two hours later", () => {
    const seconds = now.getTime() / 1000;
    const next = nextBucketRetired(
      [
        { at: seconds - 60, path: 'images/dropped-before' },
        { at: seconds - 7200, path: 'images/past-grace' },
        { at: seconds - 60, path: 'images/named-again' },
      ],
      new Set(['images/kept-named', 'images/dropped-now']),
      new Set(['images/kept-named', 'images/named-again']),
      seconds,
    );
    expect(next).toEqual([
      { at: seconds, path: 'images/dropped-now' },
      { at: seconds - 60, path: 'images/dropped-before' },
    ]);
  });

  it('stamps again, now, a file the served index still names though an earlier sync that failed listed it', () => {
    const seconds = now.getTime() / 1000;
    // A sync an hour ago listed it, then failed before its index went up: clients still read it.
    const next = nextBucketRetired(
      [{ at: seconds - 3600, path: 'images/old' }],
      new Set(['images/old']),
      new Set(['images/new']),
      seconds,
    );
    expect(next).toEqual([{ at: seconds, path: 'images/old' }]);
  });

  it('takes a stamp in the future as now, and keeps one line per file', () => {
    const seconds = now.getTime() / 1000;
    const next = nextBucketRetired(
      [
        { at: 999999999999, path: 'images/future' },
        { at: seconds - 100, path: 'images/twice' },
        { at: seconds - 50, path: 'images/twice' },
      ],
      new Set(),
      new Set(),
      seconds,
    );
    expect(next).toEqual([
      { at: seconds, path: 'images/future' },
      { at: seconds - 50, path: 'images/twice' },
    ]);
    // Past the grace from now: gone on the sync two hours on.
    expect(nextBucketRetired(next, new Set(), new Set(), seconds + 7200)).toEqual([]);
  });
});

describe('planSync', () => {
  const named = [
    { path: 'images/new.squashfs', sha256: sha('n'), size: 100 },
    { path: 'images/delta.vcdiff', sha256: sha('d'), size: 5 },
    { path: 'images/old.squashfs', sha256: sha('o'), size: 90 },
  ];
  const upload = { path: `${UPLOADS_FOLDER}run1/file-1`, sha256: sha('n'), size: 100 };

  it('copies from this run’s upload what it has, reads the rest from the server, skips what the bucket holds', () => {
    const plan = planSync({
      named,
      stored: [
        { path: 'images/old.squashfs', size: 90, lastModified: hoursAgo(100) },
        { path: upload.path, size: 100, lastModified: hoursAgo(0) },
      ],
      uploads: [upload],
      kept: new Set(),
      now,
    });
    expect(plan.copy).toEqual([{ file: named[0], from: upload.path }]);
    expect(plan.fromServer).toEqual([named[1]]);
    expect(plan.remove).toEqual([upload.path]);
  });

  it('writes again a named file whose object has another size (a damaged copy)', () => {
    const plan = planSync({
      named: [named[2]!],
      stored: [{ path: 'images/old.squashfs', size: 7, lastModified: hoursAgo(1) }],
      uploads: [],
      kept: new Set(),
      now,
    });
    expect(plan.fromServer).toEqual([named[2]]);
  });

  it('keeps what the server keeps (named, retired within the grace, SHA256SUMS) and removes the rest', () => {
    const plan = planSync({
      named: [named[2]!],
      stored: [
        { path: 'images/old.squashfs', size: 90, lastModified: hoursAgo(50) },
        { path: 'images/retired-recently.squashfs', size: 1, lastModified: hoursAgo(50) },
        { path: 'images/retired-long-ago.squashfs', size: 1, lastModified: hoursAgo(50) },
        { path: 'images/SHA256SUMS', size: 1, lastModified: hoursAgo(50) },
        // Not the action's: in a folder of images/, which the action never writes.
        { path: 'images/site/logo.png', size: 1, lastModified: hoursAgo(50) },
        { path: `${UPLOADS_FOLDER}other-run/file-0`, size: 1, lastModified: hoursAgo(1) },
        { path: `${UPLOADS_FOLDER}dead-run/file-0`, size: 1, lastModified: hoursAgo(25) },
      ],
      uploads: [],
      kept: new Set(['images/retired-recently.squashfs']),
      now,
    });
    expect(plan.remove).toEqual(['images/retired-long-ago.squashfs', `${UPLOADS_FOLDER}dead-run/file-0`]);
  });
});
