/**
 * Pure functions over the simplestreams index (`streams/v1/images.json`) that
 * incus-simplestreams writes. See the project's notes on the format: products keyed
 * `{os}:{release}:{variant}:{arch}`, versions keyed by serial, items keyed by file type.
 */

export interface SimplestreamsItem {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
  [field: string]: unknown;
}

export interface SimplestreamsVersion {
  items: Record<string, SimplestreamsItem>;
  [field: string]: unknown;
}

export interface SimplestreamsProduct {
  aliases?: string;
  arch?: string;
  os?: string;
  release?: string;
  variant?: string;
  versions: Record<string, SimplestreamsVersion>;
  [field: string]: unknown;
}

export interface ImagesIndex {
  products: Record<string, SimplestreamsProduct>;
  [field: string]: unknown;
}

export interface PublishedVersion {
  product: string;
  serial: string;
  /** Aliases of the product, as clients resolve them. */
  aliases: string[];
  /** Bytes of the version's files (metadata and data). */
  size: number;
  imageType: 'container' | 'virtual-machine';
}

/** Item fields that hold the combined (fingerprint) hash of a split image, per data type. */
const COMBINED_HASH_FIELDS = [
  'combined_squashfs_sha256',
  'combined_disk-kvm-img_sha256',
  'combined_rootxz_sha256',
  'combined_sha256',
];

/** Metadata item types the Incus client reads; a unified tarball is its own fingerprint. */
const METADATA_ITEM = 'incus.tar.xz';
const UNIFIED_ITEM = 'incus_combined.tar.gz';

/** Parses images.json, checking the shape this action relies on. */
export function parseImagesIndex(text: string): ImagesIndex {
  const document: unknown = JSON.parse(text);
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new Error('images.json is not a JSON object');
  }
  const products = (document as { products?: unknown }).products;
  if (typeof products !== 'object' || products === null || Array.isArray(products)) {
    throw new Error('images.json has no "products" object');
  }
  return document as ImagesIndex;
}

/** Splits a product's comma-separated alias list. */
export function productAliases(product: SimplestreamsProduct): string[] {
  return (product.aliases ?? '')
    .split(',')
    .map((alias) => alias.trim())
    .filter((alias) => alias !== '');
}

/** The fingerprint clients compute for a version, or undefined when it has no Incus items. */
export function versionFingerprint(version: SimplestreamsVersion): string | undefined {
  const unified = version.items[UNIFIED_ITEM];
  if (unified) return unified.sha256;
  const metadata = version.items[METADATA_ITEM];
  if (!metadata) return undefined;
  for (const field of COMBINED_HASH_FIELDS) {
    const value = metadata[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

function versionImageType(version: SimplestreamsVersion): 'container' | 'virtual-machine' {
  if (version.items['disk-kvm.img']) return 'virtual-machine';
  const unified = version.items[UNIFIED_ITEM];
  if (unified && unified['combined_type'] === 'virtual-machine') return 'virtual-machine';
  return 'container';
}

/** Finds the version that carries this fingerprint. */
export function findFingerprint(index: ImagesIndex, fingerprint: string): PublishedVersion | undefined {
  for (const [productName, product] of Object.entries(index.products)) {
    for (const [serial, version] of Object.entries(product.versions ?? {})) {
      if (versionFingerprint(version) !== fingerprint) continue;
      // Items of other clients' types may point at the same files: count each file once.
      const sizeByPath = new Map(Object.values(version.items).map((item) => [item.path, item.size]));
      const size = [...sizeByPath.values()].reduce((total, itemSize) => total + itemSize, 0);
      return {
        product: productName,
        serial,
        aliases: productAliases(product),
        size,
        imageType: versionImageType(version),
      };
    }
  }
  return undefined;
}

/** The serial incus-simplestreams gives a version (creation_date as YYYYMMDDhhmm, in UTC). */
export function serialFor(creationDate: number): string {
  const date = new Date(creationDate * 1000);
  const pad = (value: number): string => String(value).padStart(2, '0');
  return (
    String(date.getUTCFullYear()) +
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes())
  );
}

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

/** A deep copy, so that planning never changes the index it was given. */
function clone(index: ImagesIndex): ImagesIndex {
  return JSON.parse(JSON.stringify(index)) as ImagesIndex;
}

/** An empty images.json, as incus-simplestreams starts one. */
export function emptyImagesIndex(): ImagesIndex {
  return { content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', products: {} };
}

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

/** Every file path the index names. */
export function referencedPaths(index: ImagesIndex): Set<string> {
  const paths = new Set<string>();
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      for (const item of Object.values(version.items)) paths.add(item.path);
    }
  }
  return paths;
}

export type PublicationStatus = 'published' | 'unchanged' | 'replaced';

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
 * What publishing the staged version onto the live index means: nothing (already published, at
 * most aliases to move), a new version, or the replacement of a version with the same serial.
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
  const next = clone(live);
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

/** The product key incus-simplestreams gives an image: `{os}:{release}:{variant}:{arch}`. */
export function productKey(os: string, release: string, variant: string, architecture: string): string {
  return `${os}:${release}:${variant}:${architecture}`;
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

/** Aliases only: for a fingerprint that is already published. */
export function planAliasUpdate(live: ImagesIndex, fingerprint: string, aliases: string[]): ImagesIndex | undefined {
  const next = clone(live);
  const existing = findFingerprint(next, fingerprint);
  if (!existing) return undefined;
  return moveAliases(next, existing.product, aliases) ? next : undefined;
}

/** streams/v1/index.json for an images.json, as incus-simplestreams writes it. */
export function buildStreamsIndex(images: ImagesIndex): object {
  return {
    format: 'index:1.0',
    index: {
      images: {
        datatype: 'image-downloads',
        path: 'streams/v1/images.json',
        format: 'products:1.0',
        products: Object.keys(images.products).sort(),
      },
    },
  };
}

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
  const next = clone(index);
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
