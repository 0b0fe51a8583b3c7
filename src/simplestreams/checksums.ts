/**
 * The digests of published files: each release's files (the `files` output, for attestations) and
 * `images/SHA256SUMS`, which the commit writes beside the image files from every index it makes
 * live, so its lines come and go with the files the index names. Pure.
 */
import type { ImagesIndex, SimplestreamsVersion } from './images-index.js';

/** One file of a release, as the index names it (relative to the registry root). */
export interface PublishedFile {
  path: string;
  sha256: string;
  size: number;
  /** The item type: incus.tar.xz, squashfs, disk-kvm.img, squashfs.vcdiff (a delta), … */
  ftype: string;
}

/** Where the checksums file lives, relative to the registry root (next to the files it lists). */
export const SHA256SUMS_PATH = 'images/SHA256SUMS';

const SHA256 = /^[0-9a-f]{64}$/;
/** A file directly in images/ with a plain name: what `sha256sum -c` run there can check. */
const IMAGE_FILE = /^images\/([A-Za-z0-9._+-]+)$/;

/** A version's files, each once (the LXD items name the Incus items' files), in the index's order. */
export function versionFiles(version: SimplestreamsVersion): PublishedFile[] {
  const files = new Map<string, PublishedFile>();
  for (const item of Object.values(version.items)) {
    if (files.has(item.path)) continue;
    files.set(item.path, { path: item.path, sha256: item.sha256, size: item.size, ftype: item.ftype });
  }
  return [...files.values()];
}

/**
 * `images/SHA256SUMS` for an index, in the format `sha256sum -c` reads: "<sha256>  <name>", one
 * line per file in images/ the index names, sorted by name. A file the index gives two different
 * hashes is left out rather than listed wrong (the index is validated on reading; this is the
 * last guard of a file users check downloads against).
 */
export function sha256Sums(index: ImagesIndex): string {
  const sums = new Map<string, string | null>();
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      for (const item of Object.values(version.items)) {
        const name = IMAGE_FILE.exec(item.path)?.[1];
        if (!name || name === 'SHA256SUMS' || !SHA256.test(item.sha256)) continue;
        const known = sums.get(name);
        sums.set(name, known === undefined || known === item.sha256 ? item.sha256 : null);
      }
    }
  }
  return [...sums.entries()]
    .filter((entry): entry is [string, string] => entry[1] !== null)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, sha256]) => `${sha256}  ${name}\n`)
    .join('');
}
