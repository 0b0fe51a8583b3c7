import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { sha256Sums } from '../../../src/simplestreams/checksums.js';
import { emptyImagesIndex, type ImagesIndex } from '../../../src/simplestreams/images-index.js';
import {
  fileFindings,
  namedFiles,
  parseFileChecks,
  parseInspection,
  treeFindings,
  type Inspection,
} from '../../../src/registry/health.js';
import { RETIRE_GRACE_SECONDS } from '../../../src/registry/layout.js';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const NOW = 1_800_000_000;
const OLD = NOW - RETIRE_GRACE_SECONDS - 1;

function index(): ImagesIndex {
  const release = (name: string, serial: string) => ({
    arch: 'amd64',
    os: 'Crynux',
    release: 'bookworm',
    variant: 'node',
    versions: {
      [serial]: {
        items: {
          'incus.tar.xz': {
            ftype: 'incus.tar.xz',
            path: `images/${name}.incus.tar.xz`,
            sha256: sha(`${name}m`),
            size: 3,
          },
          squashfs: { ftype: 'squashfs', path: `images/${name}.squashfs`, sha256: sha(`${name}s`), size: 5 },
        },
      },
    },
  });
  return {
    ...emptyImagesIndex(),
    products: { old: release('old', '202501010000'), new: release('new', '202601010000') },
  };
}

const records = (...lines: string[]) => Buffer.from(lines.map((line) => `${line}\0`).join(''));

function inspection(extra: Partial<Inspection> = {}): Inspection {
  return {
    now: NOW,
    open: [],
    entries: [],
    staging: [],
    moved: new Set(),
    streamsIndex: undefined,
    retired: new Map(),
    sumsSha256: sha(sha256Sums(index())),
    ...extra,
  };
}

describe('parseInspection', () => {
  it('reads every record, file names with any byte but NUL, and skips records of another shape', () => {
    const hostile = 'a b\n::error::x';
    const parsed = parseInspection(
      records(
        `now ${NOW}`,
        'open /srv/images',
        `entry f 12 ${OLD}.25 ${hostile}`,
        'entry l 3 17 link',
        `staging free ${OLD} ${'a'.repeat(64)}`,
        `staging held ${NOW} ${'b'.repeat(64)}`,
        `staging link ${NOW} ${'c'.repeat(64)}`,
        `staging odd ${NOW} ${'d'.repeat(64)}`,
        'moved x.squashfs',
        'moved ../x',
        `sums ${sha('x')}`,
        `streams ${Buffer.from('{"format":"index:1.0"}').toString('base64')}`,
        `retired ${Buffer.from(`${OLD} images/r.squashfs\nnot a line\n1 ../etc/passwd\n`).toString('base64')}`,
        'entry x',
        'sums nothex',
        'nonsense record',
      ),
    );
    expect(parsed).toEqual({
      now: NOW,
      open: ['/srv/images'],
      entries: [
        { type: 'f', size: 12, mtime: OLD, name: hostile },
        { type: 'l', size: 3, mtime: 17, name: 'link' },
      ],
      staging: [
        { lock: 'free', mtime: OLD, name: 'a'.repeat(64) },
        { lock: 'held', mtime: NOW, name: 'b'.repeat(64) },
        { lock: 'link', mtime: NOW, name: 'c'.repeat(64) },
      ],
      moved: new Set(['x.squashfs']),
      streamsIndex: { format: 'index:1.0' },
      retired: new Map([['images/r.squashfs', OLD]]),
      sumsSha256: sha('x'),
    });
  });

  it('reads an index.json that is not JSON as missing', () => {
    expect(parseInspection(records(`streams ${Buffer.from('{').toString('base64')}`)).streamsIndex).toBeUndefined();
  });
});

describe('fileFindings', () => {
  it('names each file missing, behind a link, of the wrong size or sha256, and nothing else', () => {
    const checks = parseFileChecks(
      Buffer.from(
        [
          'size 3 images/old.incus.tar.xz',
          'size 4 images/old.squashfs',
          'gone images/new.incus.tar.xz',
          'link images/new.squashfs',
          'unreadable images/old.incus.tar.xz',
          `sha256 ${sha('oldm')} images/old.incus.tar.xz`,
          'noise from a login shell',
        ].join('\n'),
      ),
    );
    expect(fileFindings(index(), checks).map((f) => [f.kind, f.subject])).toEqual([
      ['missing-file', 'images/new.incus.tar.xz (new 202601010000)'],
      ['linked-file', 'images/new.squashfs (new 202601010000)'],
      ['unreadable-file', 'images/old.incus.tar.xz (old 202501010000)'],
      ['wrong-size', 'images/old.squashfs (old 202501010000)'],
    ]);
    const wrongHash = parseFileChecks(
      Buffer.from(`size 3 images/old.incus.tar.xz\nsha256 ${sha('x')} images/old.incus.tar.xz`),
    );
    expect(fileFindings(index(), wrongHash).map((f) => f.kind)).toEqual(['wrong-sha256']);
    // A file not reached in time is not a finding.
    expect(
      fileFindings(
        index(),
        parseFileChecks(Buffer.from('size 3 images/old.incus.tar.xz\nlate images/old.incus.tar.xz')),
      ),
    ).toEqual([]);
  });

  it('lists the files newest release first, each once', () => {
    expect(namedFiles(index()).map((file) => file.path)).toEqual([
      'images/new.incus.tar.xz',
      'images/new.squashfs',
      'images/old.incus.tar.xz',
      'images/old.squashfs',
    ]);
  });
});

describe('treeFindings', () => {
  it('finds nothing in a tree that matches its index', () => {
    const entries = namedFiles(index()).map((file) => ({
      type: 'f',
      size: file.size,
      mtime: OLD,
      name: file.path.slice(7),
    }));
    expect(
      treeFindings(
        index(),
        inspection({ entries: [...entries, { type: 'f', size: 1, mtime: OLD, name: 'SHA256SUMS' }] }),
      ),
    ).toEqual([]);
  });

  it('reports files no index names only past the grace time, retired ones by when they were retired', () => {
    const found = treeFindings(
      index(),
      inspection({
        entries: [
          { type: 'f', size: 1, mtime: OLD, name: 'stray' },
          { type: 'f', size: 1, mtime: NOW - 60, name: 'recent' },
          { type: 'd', size: 1, mtime: OLD, name: 'dir' },
          // old on disk, but retired a minute ago: within its grace
          { type: 'f', size: 1, mtime: OLD, name: 'just-retired' },
          { type: 'f', size: 1, mtime: NOW, name: 'long-retired' },
        ],
        retired: new Map([
          ['images/just-retired', NOW - 60],
          ['images/long-retired', OLD],
        ]),
      }),
    );
    // One finding per file, so that a repair that mends some of them says which.
    expect(found.map((f) => [f.kind, f.subject, f.repairable])).toEqual([
      ['unnamed-file', 'images/stray', false],
      ['unnamed-file', 'images/dir (type d)', false],
      ['retired-file-past-grace', 'images/long-retired', true],
    ]);
  });

  it('reports SHA256SUMS missing or out of step, open directories and staging no live run holds', () => {
    const found = treeFindings(
      index(),
      inspection({
        sumsSha256: undefined,
        open: ['/srv/lxc/simplestreams/images'],
        staging: [
          { lock: 'free', mtime: OLD, name: 'a'.repeat(64) },
          { lock: 'held', mtime: OLD, name: 'b'.repeat(64) },
          { lock: 'link', mtime: OLD, name: 'c'.repeat(64) },
        ],
      }),
    );
    expect(found.map((f) => [f.kind, f.subject, f.repairable])).toEqual([
      ['open-permissions', '/srv/lxc/simplestreams/images', false],
      ['sha256sums-out-of-step', 'images/SHA256SUMS', true],
      ['leftover-staging', `.lxc-publish/staging/${'a'.repeat(64)}`, true],
      // the clean-up leaves a tree whose lock is a link alone: not something repair mends
      ['leftover-staging', `.lxc-publish/staging/${'c'.repeat(64)}`, false],
    ]);
    expect(treeFindings(index(), inspection({ sumsSha256: sha('other') })).map((f) => f.detail)).toEqual([
      'does not list exactly the files of the index with their sha256.',
    ]);
  });
});
