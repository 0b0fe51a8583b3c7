// Deltas in the index: which releases are bases, how a delta and its base stub enter the new
// release's product, that stubs are never images, and that every index written drops the deltas
// whose base or target left it (finishIndex runs pruneDeltas on publish, alias, remove, retention).
import { describe, expect, it } from '@jest/globals';
import { finishIndex } from '../../../src/registry/publication.js';
import {
  attachDeltas,
  deltaBases,
  DELTA_ITEM_TYPE,
  pruneDeltas,
  type MadeDelta,
} from '../../../src/simplestreams/deltas.js';
import {
  findFingerprint,
  lineIdentity,
  referencedPaths,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsVersion,
} from '../../../src/simplestreams/images-index.js';
import { withLxdItems } from '../../../src/simplestreams/lxd.js';
import { planPublication, type StagedVersion } from '../../../src/simplestreams/plan.js';
import { planRemoval } from '../../../src/simplestreams/removal.js';
import { listImages } from '../../../src/simplestreams/resolve.js';
import { applyRetention } from '../../../src/simplestreams/retention.js';

const LINE = 'Crynux:bookworm:node:amd64';
const FIELDS = { arch: 'amd64', os: 'Crynux', release: 'bookworm', variant: 'node' };
/** The line's identity (images-index.ts lineIdentity), as deltaBases and attachDeltas take it. */
const ID = lineIdentity(LINE, FIELDS);
const hex = (seed: string) => seed.repeat(64).slice(0, 64);

/** A split container version as incus-simplestreams writes it: metadata `meta`, fingerprint `fp`. */
function container(meta: string, fp: string, size = 1000): SimplestreamsVersion {
  return {
    items: {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: `images/${meta}.incus.tar.xz`,
        sha256: meta,
        size: 300,
        combined_squashfs_sha256: fp,
      },
      squashfs: { ftype: 'squashfs', path: `images/${meta}.squashfs`, sha256: hex('9'), size },
    },
  };
}

function vm(meta: string, fp: string): SimplestreamsVersion {
  return {
    items: {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: `images/${meta}.incus.tar.xz`,
        sha256: meta,
        size: 300,
        'combined_disk-kvm-img_sha256': fp,
      },
      'disk-kvm.img': { ftype: 'disk-kvm.img', path: `images/${meta}.qcow2`, sha256: hex('8'), size: 1000 },
    },
  };
}

/** Releases of one line, each a product of its own. */
function indexOf(releases: Record<string, SimplestreamsVersion>, aliases: Record<string, string> = {}): ImagesIndex {
  const products: ImagesIndex['products'] = {};
  for (const [serial, version] of Object.entries(releases)) {
    products[`${LINE}:${serial}`] = {
      ...FIELDS,
      ...(aliases[serial] ? { aliases: aliases[serial] } : {}),
      versions: { [serial]: version },
    };
  }
  return { content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', products };
}

const A = { serial: '202601010000', meta: hex('a'), fp: hex('1') };
const B = { serial: '202602010000', meta: hex('b'), fp: hex('2') };
const C = { serial: '202603010000', meta: hex('c'), fp: hex('3') };

function delta(from: typeof A, to: typeof A, size = 592): MadeDelta {
  return {
    base: from.serial,
    baseFingerprint: from.fp,
    path: `images/${to.meta}.${from.serial}.vcdiff`,
    sha256: hex('d'),
    size,
  };
}

/** A then B, with B's delta from A attached, as a publish of B writes it. */
function withDelta(): ImagesIndex {
  const index = indexOf({ [A.serial]: container(A.meta, A.fp), [B.serial]: container(B.meta, B.fp) });
  expect(attachDeltas(index, ID, `${LINE}:${B.serial}`, B.serial, [delta(A, B)])).toHaveLength(1);
  return index;
}

describe('deltaBases', () => {
  const index = indexOf({
    [A.serial]: container(A.meta, A.fp),
    [B.serial]: container(B.meta, B.fp),
    '202601150000': vm(hex('e'), hex('4')),
  });

  it('takes split containers of the line older than the new release, newest first', () => {
    expect(deltaBases(index, ID, C.serial, 5).map((base) => base.serial)).toEqual([B.serial, A.serial]);
    expect(deltaBases(index, ID, C.serial, 1)).toEqual([
      {
        serial: B.serial,
        fingerprint: B.fp,
        squashfsPath: `images/${B.meta}.squashfs`,
        squashfsSize: 1000,
        squashfsSha256: hex('9'),
      },
    ]);
  });

  it('never a newer release, a VM, another line, nor any with 0', () => {
    expect(deltaBases(index, ID, B.serial, 5).map((base) => base.serial)).toEqual([A.serial]);
    expect(
      deltaBases(index, lineIdentity('Crynux:bookworm:other:amd64', { ...FIELDS, variant: 'other' }), C.serial, 5),
    ).toEqual([]);
    expect(deltaBases(index, ID, C.serial, 0)).toEqual([]);
  });

  it('never a stub: a base kept for a delta is no release', () => {
    const index2 = withDelta();
    index2.products[`${LINE}:${C.serial}`] = { ...FIELDS, versions: { [C.serial]: container(C.meta, C.fp) } };
    expect(deltaBases(index2, ID, '202612310000', 5).map((base) => base.serial)).toEqual([
      C.serial,
      B.serial,
      A.serial,
    ]);
  });
});

describe('attachDeltas', () => {
  it("adds a stub holding only A's metadata item and the delta item to B's product", () => {
    const index = withDelta();
    const product = index.products[`${LINE}:${B.serial}`]!;
    expect(Object.keys(product.versions).sort()).toEqual([A.serial, B.serial]);
    expect(product.versions[A.serial]).toEqual({
      items: { 'incus.tar.xz': container(A.meta, A.fp).items['incus.tar.xz'] },
    });
    expect(product.versions[B.serial]!.items[`delta-${A.serial}`]).toEqual({
      ftype: DELTA_ITEM_TYPE,
      path: `images/${B.meta}.${A.serial}.vcdiff`,
      sha256: hex('d'),
      size: 592,
      delta_base: A.serial,
    });
  });

  it('leaves out a delta whose base is gone or is another image now, and a second one from the same base', () => {
    const index = indexOf({ [A.serial]: container(hex('f'), hex('5')), [B.serial]: container(B.meta, B.fp) });
    expect(attachDeltas(index, ID, `${LINE}:${B.serial}`, B.serial, [delta(A, B)])).toEqual([]);
    const again = indexOf({ [A.serial]: container(A.meta, A.fp), [B.serial]: container(B.meta, B.fp) });
    const made = attachDeltas(again, ID, `${LINE}:${B.serial}`, B.serial, [delta(A, B, 1), delta(A, B, 2)]);
    expect(made.map((d) => d.size)).toEqual([1]);
    const items = Object.values(again.products[`${LINE}:${B.serial}`]!.versions[B.serial]!.items);
    expect(items.filter((item) => item.ftype === DELTA_ITEM_TYPE)).toHaveLength(1);
  });

  it('gives the stub an LXD twin with lxd-compat', () => {
    const stub = withLxdItems(withDelta()).products[`${LINE}:${B.serial}`]!.versions[A.serial]!;
    expect(Object.keys(stub.items).sort()).toEqual(['incus.tar.xz', 'lxd.tar.xz']);
    expect(stub.items['lxd.tar.xz']!['combined_squashfs_sha256']).toBe(A.fp);
  });
});

describe('a stub is no image', () => {
  const index = withLxdItems(withDelta());
  const stub = index.products[`${LINE}:${B.serial}`]!.versions[A.serial]!;

  it('has no fingerprint, so A is found in its own product only', () => {
    expect(versionFingerprint(stub)).toBeUndefined();
    expect(findFingerprint(index, A.fp)).toMatchObject({ product: `${LINE}:${A.serial}`, serial: A.serial });
  });

  it('is neither a release of the line nor listed', () => {
    expect(releasesOf(index, ID).map((r) => `${r.product} ${r.serial}`)).toEqual([
      `${LINE}:${A.serial} ${A.serial}`,
      `${LINE}:${B.serial} ${B.serial}`,
    ]);
    expect(listImages(index).map((image) => image.fingerprint)).toEqual([B.fp, A.fp]);
  });

  it("does not count the delta in B's size", () => {
    expect(findFingerprint(index, B.fp)?.size).toBe(1300);
  });

  it('a version with a metadata item but no root file has no fingerprint (as clients list it)', () => {
    const metadataOnly = { items: { 'incus.tar.xz': container(A.meta, A.fp).items['incus.tar.xz']! } };
    expect(versionFingerprint(metadataOnly)).toBeUndefined();
    expect(versionFingerprint(container(A.meta, A.fp))).toBe(A.fp);
  });
});

describe('pruneDeltas', () => {
  it('changes nothing on a consistent index', () => {
    const index = withLxdItems(withDelta());
    expect(pruneDeltas(index)).toEqual({ index, retired: [], dropped: 0, droppedItems: [] });
  });

  it('drops the stub and the delta once the base is gone, retiring the delta file', () => {
    const index = withDelta();
    delete index.products[`${LINE}:${A.serial}`];
    const pruned = pruneDeltas(index);
    expect(pruned.index.products[`${LINE}:${B.serial}`]!.versions).toEqual({
      [B.serial]: container(B.meta, B.fp),
    });
    // A's metadata file was named by the stub only.
    expect(pruned.retired.sort()).toEqual([`images/${A.meta}.incus.tar.xz`, `images/${B.meta}.${A.serial}.vcdiff`]);
  });

  it('drops a stub no delta names, and the product a stub alone is left in', () => {
    const index = withDelta();
    delete index.products[`${LINE}:${B.serial}`]!.versions[B.serial];
    const pruned = pruneDeltas(index);
    expect(Object.keys(pruned.index.products)).toEqual([`${LINE}:${A.serial}`]);
    // A's metadata file is still named by A itself.
    expect(pruned.retired).toEqual([]);
  });

  it('drops a delta naming its own version, a missing one, or a base twice', () => {
    const index = withDelta();
    const items = index.products[`${LINE}:${B.serial}`]!.versions[B.serial]!.items;
    const item = items[`delta-${A.serial}`]!;
    items['self'] = { ...item, path: 'images/self.vcdiff', delta_base: B.serial };
    items['missing'] = { ...item, path: 'images/missing.vcdiff', delta_base: '201901010000' };
    items['twice'] = { ...item, path: 'images/twice.vcdiff' };
    const pruned = pruneDeltas(index);
    expect(pruned.retired.sort()).toEqual(['images/missing.vcdiff', 'images/self.vcdiff', 'images/twice.vcdiff']);
    expect(referencedPaths(pruned.index).has(item.path)).toBe(true);
  });
});

describe('every index written keeps deltas consistent', () => {
  const options = { keepVersions: 0, lxdCompat: true };

  it('retention dropping the base drops its stub and delta (files retired)', () => {
    const index = withLxdItems(withDelta());
    const kept = applyRetention(index, { keep: 1, fingerprint: B.fp, followed: () => false });
    expect(kept.dropped).toEqual([`${LINE}:${A.serial} ${A.serial}`]);
    const finished = finishIndex({ keepVersions: 1, lxdCompat: true }, B.fp, index, undefined);
    const product = finished.index!.products[`${LINE}:${B.serial}`]!;
    expect(Object.keys(product.versions)).toEqual([B.serial]);
    expect(Object.values(product.versions[B.serial]!.items).some((i) => i.ftype === DELTA_ITEM_TYPE)).toBe(false);
    expect(finished.retired.sort()).toEqual(
      [`images/${A.meta}.incus.tar.xz`, `images/${A.meta}.squashfs`, `images/${B.meta}.${A.serial}.vcdiff`].sort(),
    );
  });

  it('removing the target B takes its product (stub and all) and aliases; removing A drops the delta', () => {
    const index = withLxdItems(indexOf({}, {}));
    Object.assign(index, withLxdItems(withDelta()));
    index.products[`${LINE}:${B.serial}`]!.aliases = 'crynux-node:latest';
    const removeB = planRemoval(index, B.fp)!;
    expect(removeB.removedAliases).toEqual(['crynux-node:latest']);
    expect(Object.keys(removeB.index.products)).toEqual([`${LINE}:${A.serial}`]);
    expect(removeB.retired).toContain(`images/${B.meta}.${A.serial}.vcdiff`);

    const removeA = planRemoval(index, A.fp)!;
    const finished = finishIndex(options, A.fp, index, removeA.index);
    expect(Object.keys(finished.index!.products[`${LINE}:${B.serial}`]!.versions)).toEqual([B.serial]);
    // A's metadata file, still named by the stub when the removal was planned, goes with the stub.
    expect(removeA.retired).toEqual([`images/${A.meta}.squashfs`]);
    expect(finished.retired.sort()).toEqual([`images/${A.meta}.incus.tar.xz`, `images/${B.meta}.${A.serial}.vcdiff`]);
  });

  it('replacing B (same serial) drops the old delta and its stub', () => {
    const index = withLxdItems(withDelta());
    const staged: StagedVersion = {
      product: LINE,
      productFields: FIELDS,
      serial: B.serial,
      version: container(hex('7'), hex('6')),
    };
    const plan = planPublication(index, staged, hex('6'), [], true);
    expect(plan.status).toBe('replaced');
    const finished = finishIndex(options, hex('6'), index, plan.index);
    expect(Object.keys(finished.index!.products[`${LINE}:${B.serial}`]!.versions)).toEqual([B.serial]);
    expect([...plan.retired, ...finished.retired]).toContain(`images/${B.meta}.${A.serial}.vcdiff`);
  });

  it('publishing C after B keeps B, its delta and stub, and makes B a base', () => {
    const index = withLxdItems(withDelta());
    const staged: StagedVersion = {
      product: LINE,
      productFields: FIELDS,
      serial: C.serial,
      version: container(C.meta, C.fp),
    };
    const plan = planPublication(index, staged, C.fp, [], false);
    expect(deltaBases(plan.index!, ID, C.serial, 1).map((b) => b.serial)).toEqual([B.serial]);
    attachDeltas(plan.index!, ID, `${LINE}:${C.serial}`, C.serial, [delta(B, C)]);
    const finished = finishIndex(options, C.fp, index, plan.index);
    expect(Object.keys(finished.index!.products[`${LINE}:${B.serial}`]!.versions).sort()).toEqual([A.serial, B.serial]);
    expect(Object.keys(finished.index!.products[`${LINE}:${C.serial}`]!.versions).sort()).toEqual([B.serial, C.serial]);
    expect(finished.retired).toEqual([]);
  });
});
