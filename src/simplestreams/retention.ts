/** keep-versions: how many releases of each image line stay in the index. Pure. */
import {
  cloneIndex,
  holdsImages,
  lineIdentity,
  referencedPaths,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
} from './images-index.js';

export interface RetentionResult {
  index: ImagesIndex;
  /** `product version` of each dropped version. */
  dropped: string[];
  /** Files only the dropped versions named. */
  retired: string[];
}

/**
 * Keeps the newest `keep` (at least 1) releases of every image line (os/release/variant/arch,
 * whatever products hold them), and never drops the release with `fingerprint` (the one just
 * published, even if its serial is older). A product left without versions goes, and its aliases
 * with it: a pinned alias names its release only. Files are retired only when no remaining
 * version names them.
 */
export function applyRetention(index: ImagesIndex, keep: number, fingerprint: string): RetentionResult {
  const next = cloneIndex(index);
  const dropped: string[] = [];
  const droppedPaths: string[] = [];
  if (keep <= 0) return { index: next, dropped, retired: [] };
  const lines = new Set(Object.entries(next.products).map(([key, product]) => lineIdentity(key, product)));
  for (const line of lines) {
    const newestFirst = releasesOf(next, line).sort((a, b) => (a.serial < b.serial ? 1 : a.serial > b.serial ? -1 : 0));
    newestFirst.forEach(({ product, serial, version }, position) => {
      if (position < keep || versionFingerprint(version) === fingerprint) return;
      const holder = next.products[product];
      if (!holder) return;
      delete holder.versions[serial];
      if (!holdsImages(holder)) delete next.products[product];
      dropped.push(`${product} ${serial}`);
      droppedPaths.push(...Object.values(version.items).map((item) => item.path));
    });
  }
  const stillNamed = referencedPaths(next);
  return { index: next, dropped, retired: [...new Set(droppedPaths)].filter((path) => !stillNamed.has(path)) };
}
