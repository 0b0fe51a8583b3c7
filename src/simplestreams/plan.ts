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
  lineKey,
  productAliases,
  referencedPaths,
  releaseProductKey,
  lineIdentity,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type SimplestreamsProduct,
  type SimplestreamsVersion,
  type ImageType,
  UNIFIED_ITEM,
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

/** What a dry run knows of an image before incus-simplestreams add has staged it. */
export interface ImageToStage {
  os: string;
  release: string;
  variant: string;
  architecture: string;
  serial: string;
  fingerprint: string;
  imageType: ImageType;
  /** The data file's kind, or 'unified' for a unified tarball. */
  data: 'squashfs' | 'qcow2' | 'rootfs-tarball' | 'unified';
  size: number;
}

/** The data item's key and the metadata item's field that carries the fingerprint, per data kind. */
const DATA_ITEMS = {
  squashfs: { item: 'squashfs', combined: 'combined_squashfs_sha256' },
  qcow2: { item: 'disk-kvm.img', combined: 'combined_disk-kvm-img_sha256' },
  'rootfs-tarball': { item: 'root.tar.xz', combined: 'combined_rootxz_sha256' },
} as const;

/**
 * The version incus-simplestreams add would stage for an image, as far as planning needs it: the
 * line's fields, the serial, and items that carry the fingerprint and the image type. The item
 * paths are placeholders (the server names the files) and the items' own hashes are left empty:
 * a dry run plans with it and publishes nothing.
 */
export function predictedVersion(image: ImageToStage): StagedVersion {
  const { os, release, variant, architecture, serial, fingerprint } = image;
  const path = (type: string) => `images/${fingerprint}.dry-run.${type}`;
  let items: SimplestreamsVersion['items'];
  if (image.data === 'unified') {
    items = {
      [UNIFIED_ITEM]: {
        ftype: UNIFIED_ITEM,
        path: path(UNIFIED_ITEM),
        sha256: fingerprint,
        size: image.size,
        combined_type: image.imageType,
      },
    };
  } else {
    const { item, combined } = DATA_ITEMS[image.data];
    items = {
      'incus.tar.xz': {
        ftype: 'incus.tar.xz',
        path: path('incus.tar.xz'),
        sha256: '',
        size: 0,
        [combined]: fingerprint,
      },
      [item]: { ftype: item, path: path(item), sha256: '', size: image.size },
    };
  }
  return {
    product: lineKey(os, release, variant, architecture),
    productFields: { arch: architecture, os, release, variant },
    serial,
    version: { items },
  };
}
