/**
 * Aliases in the index: a product's comma-separated list, which clients resolve to the product's
 * newest version. Pure.
 */
import { canonicalArchitecture } from './architectures.js';
import {
  cloneIndex,
  findFingerprint,
  isDeltaBaseStub,
  productAliases,
  productLine,
  releaseProductKey,
  type ImagesIndex,
  type SimplestreamsProduct,
} from './images-index.js';

/**
 * Puts the aliases on one product and takes them off every other product of the same
 * architecture, so that an alias such as `latest` names exactly one image per architecture.
 * Returns whether anything changed.
 */
export function moveAliases(index: ImagesIndex, productName: string, aliases: string[]): boolean {
  const target = index.products[productName];
  if (!target || aliases.length === 0) return false;
  let changed = false;
  for (const [name, product] of Object.entries(index.products)) {
    if (name === productName || canonicalArchitecture(product.arch) !== canonicalArchitecture(target.arch)) continue;
    const kept = productAliases(product).filter((alias) => !aliases.includes(alias));
    if (kept.length !== productAliases(product).length) {
      setAliases(product, kept);
      changed = true;
    }
  }
  const current = productAliases(target);
  const missing = aliases.filter((alias) => !current.includes(alias));
  if (missing.length > 0) {
    setAliases(target, [...current, ...missing]);
    changed = true;
  }
  return changed;
}

function setAliases(product: SimplestreamsProduct, aliases: string[]): void {
  if (aliases.length > 0) product.aliases = aliases.join(',');
  else delete product.aliases;
}

/** Whether `serial` is the newest version of the product (the one its aliases resolve to). */
export function isNewestVersion(product: SimplestreamsProduct, serial: string): boolean {
  // A delta base (simplestreams/deltas.ts) is no image: aliases never resolve to it.
  return Object.entries(product.versions).every(([other, version]) => other <= serial || isDeltaBaseStub(version));
}

/**
 * Moves one version of a product written the old way (one product, several versions) into a
 * release product of its own, without aliases, and returns its key. Aliases of a shared product
 * resolve to its newest version only: an older version must stand alone to carry one.
 */
function splitOutRelease(index: ImagesIndex, productName: string, serial: string): string {
  const product = index.products[productName];
  const version = product?.versions[serial];
  if (!product || !version || Object.keys(product.versions).length === 1) return productName;
  const { versions: _versions, aliases: _aliases, ...fields } = product;
  const key = releaseProductKey(productLine(productName, product), serial);
  delete product.versions[serial];
  index.products[key] = { ...fields, versions: { [serial]: version } };
  return key;
}

/**
 * Aliases only: for a fingerprint that is already published. Undefined when nothing changes. A
 * version that is not the newest of a shared product is first given a product of its own, so
 * that the aliases resolve to it.
 */
export function planAliasUpdate(live: ImagesIndex, fingerprint: string, aliases: string[]): ImagesIndex | undefined {
  const next = cloneIndex(live);
  const existing = findFingerprint(next, fingerprint);
  if (!existing || aliases.length === 0) return undefined;
  const holder = next.products[existing.product];
  const product =
    holder && !isNewestVersion(holder, existing.serial)
      ? splitOutRelease(next, existing.product, existing.serial)
      : existing.product;
  const split = product !== existing.product;
  return moveAliases(next, product, aliases) || split ? next : undefined;
}
