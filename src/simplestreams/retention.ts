/** keep-versions: how many versions of each product stay in the index. Pure. */
import {
  cloneIndex,
  referencedPaths,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsVersion,
} from './images-index.js';

export interface RetentionResult {
  index: ImagesIndex;
  /** `product version` of each dropped version. */
  dropped: string[];
  /** Files only the dropped versions named. */
  retired: string[];
}

/**
 * Keeps the newest `keep` (at least 1) versions of every product, and never drops the version with
 * `fingerprint` (the one just published, even if its serial is older). An alias names a product
 * and clients resolve it to the product's newest version, which is always kept, so every alias
 * keeps its target. Files are retired only when no remaining version names them.
 */
export function applyRetention(index: ImagesIndex, keep: number, fingerprint: string): RetentionResult {
  const next = cloneIndex(index);
  const dropped: string[] = [];
  const droppedPaths: string[] = [];
  if (keep <= 0) return { index: next, dropped, retired: [] };
  for (const [name, product] of Object.entries(next.products)) {
    const serials = Object.keys(product.versions ?? {})
      .sort()
      .reverse();
    serials.forEach((serial, position) => {
      const version = product.versions[serial] as SimplestreamsVersion;
      if (position < keep || versionFingerprint(version) === fingerprint) return;
      delete product.versions[serial];
      dropped.push(`${name} ${serial}`);
      droppedPaths.push(...Object.values(version.items).map((item) => item.path));
    });
  }
  const stillNamed = referencedPaths(next);
  return { index: next, dropped, retired: [...new Set(droppedPaths)].filter((path) => !stillNamed.has(path)) };
}
