/**
 * What publishing a staged version onto the live index means: nothing (already published, at
 * most aliases to move), a new release, or the replacement of a release with the same serial.
 * Pure.
 */
import { isNewestVersion, moveAliases, planAliasUpdate } from './aliases.js';
import {
  cloneIndex,
  holdsImages,
  findFingerprint,
  productAliases,
  referencedPaths,
  releaseProductKey,
  lineIdentity,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsProduct,
  type SimplestreamsVersion,
} from './images-index.js';

export type PublicationStatus = 'published' | 'unchanged' | 'replaced';

/** The one product version `incus-simplestreams add` wrote into an empty staging tree. */
export interface StagedVersion {
  product: string;
  /** The product's fields other than versions (arch, os, release, variant, …). */
  productFields: Omit<SimplestreamsProduct, 'versions'>;
  serial: string;
  version: SimplestreamsVersion;
}

export function stagedVersion(staged: ImagesIndex): StagedVersion {
  const products = Object.entries(staged.products);
  const [entry] = products;
  const versions = entry ? Object.entries(entry[1].versions ?? {}) : [];
  const [versionEntry] = versions;
  if (products.length !== 1 || versions.length !== 1 || !entry || !versionEntry) {
    throw new Error('the staging index does not hold exactly one product version');
  }
  const { versions: _versions, ...productFields } = entry[1];
  return { product: entry[0], productFields, serial: versionEntry[0], version: versionEntry[1] };
}

export interface PublicationPlan {
  status: PublicationStatus;
  /** The index to write; undefined when the live one already says everything. */
  index?: ImagesIndex;
  /** Files no longer named by the new index (of a replaced version). */
  retired: string[];
}

export class SerialConflictError extends Error {
  constructor(
    readonly product: string,
    readonly serial: string,
    readonly existingFingerprint: string,
  ) {
    super(`${product} already has version ${serial} with fingerprint ${existingFingerprint}`);
    this.name = 'SerialConflictError';
  }
}

/**
 * Publishes the staged version as a release product of its own (simplestreams/images-index.ts),
 * with the requested aliases, which leave every other product of the same architecture. A
 * version of the same line and serial is a clash: refused, or replaced with `replace` (its files
 * retired; the aliases of a product it leaves empty go to the new release, which takes its place).
 */
export function planPublication(
  live: ImagesIndex,
  staged: StagedVersion,
  fingerprint: string,
  aliases: string[],
  replace: boolean,
): PublicationPlan {
  if (findFingerprint(live, fingerprint)) {
    const index = planAliasUpdate(live, fingerprint, aliases);
    return { status: 'unchanged', ...(index ? { index } : {}), retired: [] };
  }
  const next = cloneIndex(live);
  // The staging tree's product key names the line: incus-simplestreams add keys products so.
  const releaseKey = releaseProductKey(staged.product, staged.serial);
  const line = lineIdentity(staged.product, staged.productFields);
  const clashes = releasesOf(next, line).filter((release) => release.serial === staged.serial);
  const [clash] = clashes;
  if (clash && !replace) {
    throw new SerialConflictError(clash.product, staged.serial, versionFingerprint(clash.version) ?? 'unknown');
  }
  const retired: string[] = [];
  const inherited: string[] = [];
  for (const { product, serial, version } of clashes) {
    retired.push(...Object.values(version.items).map((item) => item.path));
    const holder = next.products[product] as SimplestreamsProduct;
    // The aliases that resolved to the replaced version go to the new one, not to an older one.
    const wasNewest = isNewestVersion(holder, serial);
    delete holder.versions[serial];
    if (product === releaseKey) continue;
    if (wasNewest) {
      inherited.push(...productAliases(holder));
      delete holder.aliases;
    }
    if (!holdsImages(holder)) delete next.products[product];
  }
  const existing = next.products[releaseKey];
  if (existing) existing.versions[staged.serial] = staged.version;
  else next.products[releaseKey] = { ...staged.productFields, versions: { [staged.serial]: staged.version } };
  moveAliases(next, releaseKey, [...new Set([...inherited, ...aliases])]);
  const stillNamed = referencedPaths(next);
  return {
    status: clash ? 'replaced' : 'published',
    index: next,
    retired: [...new Set(retired)].filter((path) => !stillNamed.has(path)),
  };
}
