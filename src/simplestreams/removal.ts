/** Taking a published version out of the index (the remove sub-action). Pure. */
import { isNewestVersion } from './aliases.js';
import {
  cloneIndex,
  findFingerprint,
  holdsImages,
  productAliases,
  referencedPaths,
  type ImagesIndex,
} from './images-index.js';

export interface RemovalPlan {
  index: ImagesIndex;
  product: string;
  serial: string;
  /** Aliases that went with the version (they resolved to it: it was the newest of its product). */
  removedAliases: string[];
  /** Files no version names any more: kept downloadable for a while, then removed. */
  retired: string[];
}

/**
 * The index without the version carrying `fingerprint`, and without any item of another version
 * that is a delta to or from it. A product left without versions goes, with its aliases.
 * Undefined when no version carries the fingerprint.
 */
export function planRemoval(live: ImagesIndex, fingerprint: string): RemovalPlan | undefined {
  const found = findFingerprint(live, fingerprint);
  if (!found) return undefined;
  const next = cloneIndex(live);
  const product = next.products[found.product];
  const version = product?.versions[found.serial];
  if (!product || !version) return undefined;
  const paths = Object.values(version.items).map((item) => item.path);
  // Aliases resolve to a product's newest version: removing it must not hand them to an older one.
  const wasNewest = isNewestVersion(product, found.serial);
  delete product.versions[found.serial];
  // Deltas whose base is the removed version cannot be applied any more.
  for (const other of Object.values(product.versions)) {
    for (const [key, item] of Object.entries(other.items)) {
      if (item['delta_base'] === found.serial) {
        paths.push(item.path);
        delete other.items[key];
      }
    }
  }
  let removedAliases: string[] = [];
  if (wasNewest) {
    removedAliases = productAliases(product);
    delete product.aliases;
  }
  if (!holdsImages(product)) delete next.products[found.product];
  const stillNamed = referencedPaths(next);
  return {
    index: next,
    product: found.product,
    serial: found.serial,
    removedAliases,
    retired: [...new Set(paths)].filter((path) => !stillNamed.has(path)),
  };
}
