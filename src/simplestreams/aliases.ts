/**
 * Aliases in the index: a product's comma-separated list, which clients resolve to the product's
 * newest version. Pure.
 */
import {
  cloneIndex,
  findFingerprint,
  productAliases,
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
    if (name === productName || product.arch !== target.arch) continue;
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

/** Aliases only: for a fingerprint that is already published. Undefined when nothing changes. */
export function planAliasUpdate(live: ImagesIndex, fingerprint: string, aliases: string[]): ImagesIndex | undefined {
  const next = cloneIndex(live);
  const existing = findFingerprint(next, fingerprint);
  if (!existing) return undefined;
  return moveAliases(next, existing.product, aliases) ? next : undefined;
}
