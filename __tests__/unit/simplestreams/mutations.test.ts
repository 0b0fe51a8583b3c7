// Hundreds of damaged variants of a valid images.json (fields removed, wrong types, huge numbers,
// deep nesting, __proto__ keys, paths out of the tree). Each is either refused by
// parseImagesIndex with a message naming the entry, or read and then planned on (publish,
// aliases, retention, LXD items, the public check's expectations) without any other error: never
// a TypeError ("Cannot read properties of undefined"), which the action would report as an
// unexpected error.
import { describe, expect, it } from '@jest/globals';
import { expectedVersion } from '../../../src/public/problems.js';
import { planAliasUpdate } from '../../../src/simplestreams/aliases.js';
import {
  buildStreamsIndex,
  findFingerprint,
  referencedPaths,
  releasesOf,
} from '../../../src/simplestreams/images-index.js';
import { InvalidIndexError, parseImagesIndex } from '../../../src/simplestreams/parse.js';
import { withLxdItems } from '../../../src/simplestreams/lxd.js';
import { planPublication, SerialConflictError, type StagedVersion } from '../../../src/simplestreams/plan.js';
import { applyRetention } from '../../../src/simplestreams/retention.js';
import { markUnifiedVm } from '../../../src/simplestreams/unified-vm.js';

const FP = 'a'.repeat(64);
const META = 'b'.repeat(64);

/** A valid index: a release product with Incus and LXD items, and a unified image. */
function valid(): Record<string, unknown> {
  const item = (ftype: string, path: string, extra: Record<string, unknown> = {}) => ({
    ftype,
    path,
    sha256: META,
    size: 10,
    ...extra,
  });
  return {
    content_id: 'images',
    datatype: 'image-downloads',
    format: 'products:1.0',
    products: {
      'Crynux:bookworm:node:amd64:202601010000': {
        aliases: 'crynux-node:latest,crynux-node:v1',
        arch: 'amd64',
        os: 'Crynux',
        release: 'bookworm',
        variant: 'node',
        versions: {
          '202601010000': {
            items: {
              'incus.tar.xz': item('incus.tar.xz', `images/${META}.incus.tar.xz`, { combined_squashfs_sha256: FP }),
              'lxd.tar.xz': item('lxd.tar.xz', `images/${META}.incus.tar.xz`, { combined_squashfs_sha256: FP }),
              squashfs: item('squashfs', `images/${META}.squashfs`),
            },
          },
        },
      },
      'Crynux:bookworm:unified:arm64': {
        arch: 'arm64',
        os: 'Crynux',
        release: 'bookworm',
        variant: 'unified',
        versions: {
          '202601020000': { items: { 'incus_combined.tar.gz': item('incus_combined.tar.gz', 'images/u.tar.gz') } },
        },
      },
    },
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path (list of keys) to an object member in the document. */
function memberPaths(value: Json, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([key, child]) => [[...prefix, key], ...memberPaths(child, [...prefix, key])]);
}

function objectPaths(value: Json, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  return [prefix, ...Object.entries(value).flatMap(([key, child]) => objectPaths(child, [...prefix, key]))];
}

function edit(path: string[], change: (parent: Record<string, Json>, key: string) => void): Json {
  const document = JSON.parse(JSON.stringify(valid())) as Json;
  let parent = document as Record<string, Json>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, Json>;
  change(parent, path.at(-1) as string);
  return document;
}

const deep = (depth: number): Json => {
  let value: Json = 'bottom';
  for (let i = 0; i < depth; i++) value = { nested: value };
  return value;
};

const REPLACEMENTS: Json[] = [null, 0, -1, 1.5, 1e308, 'x', '', true, [], {}, [1, 2], deep(2000)];

/** The variants, as JSON text. */
function variants(): { name: string; text: string }[] {
  const base = valid() as Json;
  const out: { name: string; text: string }[] = [];
  for (const path of memberPaths(base)) {
    const at = path.join('.');
    out.push({
      name: `without ${at}`,
      text: JSON.stringify(
        edit(path, (parent, key) => {
          delete parent[key];
        }),
      ),
    });
    REPLACEMENTS.forEach((replacement, i) =>
      out.push({
        name: `${at} = replacement ${i}`,
        text: JSON.stringify(
          edit(path, (parent, key) => {
            parent[key] = replacement;
          }),
        ),
      }),
    );
  }
  // A `__proto__` member at every level: JSON.parse makes it an own property, as a server's file would.
  for (const path of objectPaths(base)) {
    const text = JSON.stringify(
      edit([...path, '\u0000marker'], (parent, key) => {
        parent[key] = { ftype: 'x' };
      }),
    ).replace('"\\u0000marker"', '"__proto__"');
    out.push({ name: `__proto__ in ${path.join('.') || 'the root'}`, text });
  }
  for (const bad of ['/etc/passwd', '../../victim', 'images/../../victim', 'images/a\nb', '']) {
    const path = [
      'products',
      'Crynux:bookworm:node:amd64:202601010000',
      'versions',
      '202601010000',
      'items',
      'squashfs',
      'path',
    ];
    out.push({
      name: `path ${JSON.stringify(bad)}`,
      text: JSON.stringify(
        edit(path, (parent, key) => {
          parent[key] = bad;
        }),
      ),
    });
  }
  out.push({ name: 'not JSON', text: '{"products": {' }, { name: 'empty', text: '' });
  return out;
}

const staged = (serial: string): StagedVersion => ({
  product: 'Crynux:bookworm:node:amd64',
  productFields: { arch: 'amd64', os: 'Crynux', release: 'bookworm', variant: 'node' },
  serial,
  version: {
    items: {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: 'images/n.incus.tar.xz',
        sha256: 'n',
        size: 1,
        combined_squashfs_sha256: 'f'.repeat(64),
      },
      squashfs: { ftype: 'squashfs', path: 'images/n.squashfs', sha256: 'n', size: 1 },
    },
  },
});

/** Everything the action does with a live or public index it has read. */
function useIndex(text: string): void {
  const index = parseImagesIndex(text);
  findFingerprint(index, FP);
  referencedPaths(index);
  buildStreamsIndex(index);
  releasesOf(index, 'Crynux:bookworm:node:amd64');
  expectedVersion(index, FP);
  planAliasUpdate(index, FP, ['crynux-node:latest']);
  withLxdItems(index);
  markUnifiedVm(index, FP);
  applyRetention(index, { keep: 1, fingerprint: FP, followed: () => true });
  for (const serial of ['202601010000', '202701010000']) {
    try {
      const plan = planPublication(index, staged(serial), 'f'.repeat(64), ['crynux-node:latest'], false);
      if (plan.index)
        applyRetention(withLxdItems(plan.index), { keep: 1, fingerprint: 'f'.repeat(64), followed: () => false });
    } catch (error) {
      if (!(error instanceof SerialConflictError)) throw error;
    }
  }
}

describe('damaged images.json variants', () => {
  const all = variants();

  it('are many', () => {
    expect(all.length).toBeGreaterThanOrEqual(300);
  });

  it('are refused with the entry named, or used without any other error', () => {
    const failures: string[] = [];
    let refused = 0;
    for (const variant of all) {
      try {
        useIndex(variant.text);
      } catch (error) {
        if (error instanceof InvalidIndexError) {
          refused++;
          if (!/images\.json/.test(error.message)) failures.push(`${variant.name}: unnamed: ${error.message}`);
        } else if (!(error instanceof SyntaxError)) {
          failures.push(`${variant.name}: ${String(error)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(refused).toBeGreaterThan(100);
  });

  it('names the broken entry', () => {
    const text = JSON.stringify(
      edit(['products', 'Crynux:bookworm:unified:arm64', 'versions', '202601020000', 'items'], (parent, key) => {
        delete parent[key];
      }),
    );
    expect(() => parseImagesIndex(text)).toThrow(
      'images.json products["Crynux:bookworm:unified:arm64"].versions["202601020000"] has no "items" object',
    );
    const proto = JSON.stringify(valid()).replace('"squashfs":{', '"__proto__":{');
    expect(() => parseImagesIndex(proto)).toThrow(/has a key named __proto__/);
  });

  it('the valid one is used as it is', () => {
    expect(() => useIndex(JSON.stringify(valid()))).not.toThrow();
    expect(findFingerprint(parseImagesIndex(JSON.stringify(valid())), FP)?.product).toBe(
      'Crynux:bookworm:node:amd64:202601010000',
    );
  });
});
