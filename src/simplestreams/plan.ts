/**
 * What publishing a staged version onto the live index means: nothing (already published, at
 * most aliases to move), a new version, or the replacement of a version with the same serial.
 * Pure.
 */
import { moveAliases, planAliasUpdate } from './aliases.js';
import {
  cloneIndex,
  findFingerprint,
  referencedPaths,
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
  const product = next.products[staged.product];
  const clash = product?.versions?.[staged.serial];
  let status: PublicationStatus = 'published';
  const retired: string[] = [];
  if (clash) {
    if (!replace) throw new SerialConflictError(staged.product, staged.serial, versionFingerprint(clash) ?? 'unknown');
    status = 'replaced';
    retired.push(...Object.values(clash.items).map((item) => item.path));
  }
  if (product) {
    product.versions = { ...product.versions, [staged.serial]: staged.version };
  } else {
    next.products[staged.product] = { ...staged.productFields, versions: { [staged.serial]: staged.version } };
  }
  moveAliases(next, staged.product, aliases);
  const stillNamed = referencedPaths(next);
  return { status, index: next, retired: retired.filter((path) => !stillNamed.has(path)) };
}

/** The fingerprint published under this product and serial, if it is not `fingerprint`. */
export function conflictingFingerprint(
  index: ImagesIndex,
  product: string,
  serial: string,
  fingerprint: string,
): string | undefined {
  const version = index.products[product]?.versions?.[serial];
  if (!version) return undefined;
  const existing = versionFingerprint(version) ?? 'unknown';
  return existing === fingerprint ? undefined : existing;
}
