/**
 * vcdiff deltas between releases of an image line: which releases to make them from, how they
 * enter the index, and how the index stays consistent when releases leave it. Pure.
 *
 * A delta is an item of the new version, `{ftype: 'squashfs.vcdiff', path, sha256, size,
 * delta_base}`. A daemon that holds the base image and has xdelta3 on its PATH downloads the delta
 * instead of the squashfs and rebuilds the new squashfs with `xdelta3 -d`. `delta_base` names a
 * version of the same product, and each release is a product of its own (images-index.ts): the
 * new release's product therefore holds, for each base, a stub version keyed by the base's serial
 * holding only a copy of the base's metadata item (and its LXD twin). Clients list a version as
 * an image only when a root file sits beside its metadata item, so a stub is no image, but the
 * daemons read the base's fingerprint from it (Incus from `incus.tar.xz`'s
 * `combined_squashfs_sha256`, LXD from `lxd.tar.xz`). Checked with incusd 6.0.4 and LXD 5.0.2.
 *
 * Traps that shape this module: a delta that fails to apply fails the download (no fallback), so
 * every delta is decoded on the server before it is published; Incus applies every applicable
 * delta item one after the other, so a version holds at most one delta per base; Incus reads the
 * base fingerprint from `combined_squashfs_sha256` even for VM disk deltas, so VMs get none.
 */
import {
  cloneIndex,
  isDeltaBaseStub,
  referencedPaths,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsItem,
  type SimplestreamsVersion,
} from './images-index.js';

export const DELTA_ITEM_TYPE = 'squashfs.vcdiff';
const METADATA_ITEM = 'incus.tar.xz';
const SQUASHFS_ITEM = 'squashfs';

/** A release deltas can be made from: a split container of the line, older than the new one. */
export interface DeltaBase {
  serial: string;
  fingerprint: string;
  /** The base's squashfs, relative to the registry root (images/…). */
  squashfsPath: string;
  squashfsSize: number;
  /** The base's squashfs as the index records it, checked on the server before a delta is made. */
  squashfsSha256: string;
}

/** A delta made and checked on the server, ready to enter the index. */
export interface MadeDelta {
  /** The base's serial (the delta's `delta_base`). */
  base: string;
  /** The base's fingerprint when the delta was made: the base must still be that image. */
  baseFingerprint: string;
  /** Relative to the registry root: images/<name>.vcdiff. */
  path: string;
  sha256: string;
  size: number;
}

/** Whether a version is a split container with the fields a delta needs (squashfs, combined hash). */
export function isSplitContainer(version: SimplestreamsVersion): boolean {
  const metadata = version.items[METADATA_ITEM];
  const squashfs = version.items[SQUASHFS_ITEM];
  const combined = metadata?.['combined_squashfs_sha256'];
  return squashfs?.ftype === SQUASHFS_ITEM && typeof combined === 'string' && combined !== '';
}

/**
 * The releases of the line with `identity` (images-index.ts lineIdentity) to make deltas from for a new release with `serial`: split containers,
 * older than it, newest first, at most `count` (each serial once).
 */
export function deltaBases(index: ImagesIndex, identity: string, serial: string, count: number): DeltaBase[] {
  if (count <= 0) return [];
  const bases = new Map<string, DeltaBase>();
  const older = releasesOf(index, identity)
    .filter((release) => release.serial < serial && isSplitContainer(release.version))
    .sort((a, b) => (a.serial < b.serial ? 1 : a.serial > b.serial ? -1 : 0));
  for (const { serial: baseSerial, version } of older) {
    const fingerprint = versionFingerprint(version);
    const squashfs = version.items[SQUASHFS_ITEM];
    if (!fingerprint || !squashfs || bases.has(baseSerial)) continue;
    bases.set(baseSerial, {
      serial: baseSerial,
      fingerprint,
      squashfsPath: squashfs.path,
      squashfsSize: squashfs.size,
      squashfsSha256: squashfs.sha256,
    });
    if (bases.size >= count) break;
  }
  return [...bases.values()];
}

/** The key of a delta item in the new version. */
function deltaItemKey(baseSerial: string): string {
  return `delta-${baseSerial}`;
}

/**
 * Adds the deltas to the new release (`product`, `serial`) in `index` (changed in place): a stub
 * version per base and a delta item in the new version. A delta whose base is no longer the image
 * it was made from (removed or replaced meanwhile) is left out. Returns the deltas added.
 */
export function attachDeltas(
  index: ImagesIndex,
  identity: string,
  product: string,
  serial: string,
  deltas: readonly MadeDelta[],
): MadeDelta[] {
  const holder = index.products[product];
  const version = holder?.versions[serial];
  if (!holder || !version) return [];
  const attached: MadeDelta[] = [];
  for (const delta of deltas) {
    if (delta.base === serial || attached.some((other) => other.base === delta.base)) continue;
    const base = releasesOf(index, identity).find(
      (release) => release.serial === delta.base && versionFingerprint(release.version) === delta.baseFingerprint,
    );
    const metadata = base?.version.items[METADATA_ITEM];
    if (!base || !metadata || !isSplitContainer(base.version)) continue;
    // In an older layout (one product, many versions) the base is a version of this product already.
    if (base.product !== product) holder.versions[delta.base] = { items: { [METADATA_ITEM]: { ...metadata } } };
    version.items[deltaItemKey(delta.base)] = {
      ftype: DELTA_ITEM_TYPE,
      path: delta.path,
      sha256: delta.sha256,
      size: delta.size,
      delta_base: delta.base,
    };
    attached.push(delta);
  }
  return attached;
}

function isDeltaItem(item: SimplestreamsItem): boolean {
  return item['delta_base'] !== undefined;
}

/** The fingerprint a stub stands for: its metadata item's combined hash. */
function stubFingerprint(version: SimplestreamsVersion): string | undefined {
  const value = version.items[METADATA_ITEM]?.['combined_squashfs_sha256'];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** A delta item or base stub pruneDeltas dropped, and why. */
export interface DroppedDelta {
  product: string;
  serial: string;
  what: string;
}

export interface PrunedDeltas {
  index: ImagesIndex;
  /** Files no item names any more. */
  retired: string[];
  dropped: number;
  droppedItems: DroppedDelta[];
}

/**
 * Keeps deltas consistent with the index (run on every index written): drops stubs whose image is
 * no longer in the index, delta items whose `delta_base` is not a version of their product (or
 * names the version itself, or repeats a base), then stubs no delta names. A product left with no
 * version goes. Files no item names any more are returned as retired.
 */
export function pruneDeltas(index: ImagesIndex): PrunedDeltas {
  const next = cloneIndex(index);
  const images = new Set<string>();
  for (const product of Object.values(next.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      const fingerprint = versionFingerprint(version);
      if (fingerprint) images.add(fingerprint);
    }
  }
  const paths: string[] = [];
  const droppedItems: DroppedDelta[] = [];
  let dropped = 0;
  for (const [key, product] of Object.entries(next.products)) {
    const versions = product.versions ?? {};
    const before = dropped;
    for (const [serial, version] of Object.entries(versions)) {
      if (!isDeltaBaseStub(version)) continue;
      const fingerprint = stubFingerprint(version);
      if (fingerprint && images.has(fingerprint)) continue;
      // The base's own files: retired here when retention or a removal left only the stub naming them.
      paths.push(...Object.values(version.items).map((item) => item.path));
      delete versions[serial];
      dropped += 1;
      droppedItems.push({ product: key, serial, what: 'base of an image no longer published' });
    }
    const named = new Set<string>();
    for (const [serial, version] of Object.entries(versions)) {
      if (isDeltaBaseStub(version)) continue;
      const bases = new Set<string>();
      for (const [itemKey, item] of Object.entries(version.items)) {
        if (!isDeltaItem(item)) continue;
        const base = item['delta_base'];
        const valid = typeof base === 'string' && base !== serial && Object.hasOwn(versions, base) && !bases.has(base);
        if (valid) {
          bases.add(base);
          named.add(base);
          continue;
        }
        paths.push(item.path);
        delete version.items[itemKey];
        dropped += 1;
        droppedItems.push({ product: key, serial, what: `delta ${itemKey} from a base not in the product` });
      }
    }
    for (const [serial, version] of Object.entries(versions)) {
      if (isDeltaBaseStub(version) && !named.has(serial)) {
        paths.push(...Object.values(version.items).map((item) => item.path));
        delete versions[serial];
        dropped += 1;
        droppedItems.push({ product: key, serial, what: 'base no delta names' });
      }
    }
    if (dropped > before && Object.keys(versions).length === 0) delete next.products[key];
  }
  if (dropped === 0) return { index, retired: [], dropped, droppedItems };
  const stillNamed = referencedPaths(next);
  return {
    index: next,
    retired: [...new Set(paths)].filter((path) => !stillNamed.has(path)),
    dropped,
    droppedItems,
  };
}
