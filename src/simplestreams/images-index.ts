/**
 * The simplestreams index (`streams/v1/images.json`) as incus-simplestreams writes it: types,
 * parsing, and reading what a version is. Pure; see the project's notes on the format: products
 * keyed `{os}:{release}:{variant}:{arch}`, versions keyed by serial, items keyed by file type.
 */

export type ImageType = 'container' | 'virtual-machine';

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

/** A version as clients see it: where it is, its aliases, size and type. */
export interface PublishedVersion {
  product: string;
  serial: string;
  /** Aliases of the product, as clients resolve them. */
  aliases: string[];
  /** Bytes of the version's files (metadata and data). */
  size: number;
  imageType: ImageType;
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
export const UNIFIED_ITEM = 'incus_combined.tar.gz';

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

/** An empty images.json, as incus-simplestreams starts one. */
export function emptyImagesIndex(): ImagesIndex {
  return { content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', products: {} };
}

/** A deep copy, so that planning never changes the index it was given. */
export function cloneIndex(index: ImagesIndex): ImagesIndex {
  return JSON.parse(JSON.stringify(index)) as ImagesIndex;
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

function versionImageType(version: SimplestreamsVersion): ImageType {
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

/** The product key incus-simplestreams gives an image: `{os}:{release}:{variant}:{arch}`. */
export function productKey(os: string, release: string, variant: string, architecture: string): string {
  return `${os}:${release}:${variant}:${architecture}`;
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
