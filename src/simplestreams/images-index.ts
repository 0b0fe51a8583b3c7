/**
 * The simplestreams index (`streams/v1/images.json`): types, parsing, and reading what a version
 * is. Pure; see the project's notes on the format: products hold versions keyed by serial, and
 * versions hold items keyed by file type.
 *
 * Releases and lines: incus-simplestreams keys a product `{os}:{release}:{variant}:{arch}` and adds
 * every build of that image line to it as a new version. Clients give a product's aliases to its
 * newest version, so an alias such as `crynux-node:v2.6.0` would follow the next release. This
 * action therefore publishes each release (each serial) as a product of its own, keyed
 * `{os}:{release}:{variant}:{arch}:{serial}`, with the same os/release/variant/arch fields:
 * clients never parse the key (incus and lxd `shared/simplestreams/products.go`), an alias stays on
 * the release it was given to, and a moving alias (`latest`) is moved between releases. Products
 * written the old way (one product, many versions) are read as releases of their line too.
 */
import { canonicalArchitecture } from './architectures.js';
import { versionFiles, type PublishedFile } from './checksums.js';

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
  /** The version's files with their sha256 (deltas included), each once. */
  files: PublishedFile[];
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

/**
 * Item types of the root file of a split image. Clients list a split version as an image only when
 * one of them sits beside the metadata item (incus and lxd `shared/simplestreams/products.go`): a
 * version holding only a metadata item is no image, but may still be the base of a delta
 * (simplestreams/deltas.ts).
 */
const ROOT_ITEM_TYPES = new Set(['squashfs', 'disk-kvm.img', 'root.tar.xz', 'disk1.img', 'uefi1.img']);

/** Whether a split version has a root file item, as clients require to list it as an image. */
function hasRootItem(version: SimplestreamsVersion): boolean {
  return Object.values(version.items).some((item) => ROOT_ITEM_TYPES.has(item.ftype));
}

/**
 * The fingerprint clients compute for a version, or undefined when it is no image: no Incus items,
 * or a metadata item without a root file beside it (a delta base, simplestreams/deltas.ts).
 */
export function versionFingerprint(version: SimplestreamsVersion): string | undefined {
  const unified = version.items[UNIFIED_ITEM];
  if (unified) return unified.sha256;
  const metadata = version.items[METADATA_ITEM];
  if (!metadata || !hasRootItem(version)) return undefined;
  for (const field of COMBINED_HASH_FIELDS) {
    const value = metadata[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

export function versionImageType(version: SimplestreamsVersion): ImageType {
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
      // Deltas are not part of the image (a client downloads one instead of the data file).
      const files = Object.values(version.items).filter((item) => item['delta_base'] === undefined);
      const sizeByPath = new Map(files.map((item) => [item.path, item.size]));
      const size = [...sizeByPath.values()].reduce((total, itemSize) => total + itemSize, 0);
      return {
        product: productName,
        serial,
        aliases: productAliases(product),
        size,
        imageType: versionImageType(version),
        files: versionFiles(version),
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

/** An image line, `{os}:{release}:{variant}:{arch}`: the product key incus-simplestreams gives it. */
export function lineKey(os: string, release: string, variant: string, architecture: string): string {
  return `${os}:${release}:${variant}:${architecture}`;
}

/** The line a product belongs to, from its fields (its key, when it has none of them). */
export function productLine(key: string, product: SimplestreamsProduct): string {
  const { os, release, variant, arch } = product;
  if ([os, release, variant, arch].every((field) => typeof field === 'string' && field !== '')) {
    return lineKey(os as string, release as string, variant as string, arch as string);
  }
  return key;
}

/** The key of the product that holds one release of a line. */
export function releaseProductKey(line: string, serial: string): string {
  return `${line}:${serial}`;
}

/** A version of an image line, wherever it is (its release product, or an older shared one). */
export interface Release {
  product: string;
  serial: string;
  version: SimplestreamsVersion;
}

/**
 * What makes two products one image line: the os, release and variant fields and the
 * architecture (by its Incus name), compared field by field, so that no value can pass for
 * another by holding a ':'. A product without those fields is a line of its own.
 */
export function lineIdentity(
  key: string,
  product: Pick<SimplestreamsProduct, 'os' | 'release' | 'variant' | 'arch'>,
  options: LineOptions = {},
): string {
  const { os, release, variant, arch } = product;
  if (![os, release, variant, arch].every((field) => typeof field === 'string' && field !== '')) {
    return JSON.stringify(['product', key]);
  }
  if (options.releaseIsVersion) return JSON.stringify([os, variant, canonicalArchitecture(arch)]);
  return JSON.stringify([os, release, variant, canonicalArchitecture(arch)]);
}

export interface LineOptions {
  /**
   * The images' release field is their version (release-is-version: `release: v3.5.0`, as
   * crynux-node's distrobuilder file sets it): a line is then (os, variant, architecture), and
   * each release one version of it.
   */
  releaseIsVersion?: boolean;
}

/** Every release (a version that is an image) of the line with this identity, in any product. */
export function releasesOf(index: ImagesIndex, identity: string, options: LineOptions = {}): Release[] {
  const releases: Release[] = [];
  for (const [product, fields] of Object.entries(index.products)) {
    if (lineIdentity(product, fields, options) !== identity) continue;
    for (const [serial, version] of Object.entries(fields.versions ?? {})) {
      if (versionFingerprint(version) !== undefined) releases.push({ product, serial, version });
    }
  }
  return releases;
}

/**
 * A version kept only as the base of a delta: an Incus metadata item (and its LXD twin) and no
 * other item, so no image to clients (simplestreams/deltas.ts).
 */
export function isDeltaBaseStub(version: SimplestreamsVersion): boolean {
  const items = Object.values(version.items);
  return (
    version.items[METADATA_ITEM] !== undefined &&
    items.every((item) => item.ftype === METADATA_ITEM || item.ftype === 'lxd.tar.xz')
  );
}

/** Whether a product holds an image (a version other than a delta base). */
export function holdsImages(product: SimplestreamsProduct): boolean {
  return Object.values(product.versions ?? {}).some((version) => !isDeltaBaseStub(version));
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
