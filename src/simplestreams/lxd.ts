/**
 * LXD compatibility of the simplestreams index: pure functions, no I/O.
 *
 * LXD clients (5.0 and later) read only `lxd.tar.xz` and `lxd_combined.tar.gz` items, while
 * incus-simplestreams writes only `incus.tar.xz` and `incus_combined.tar.gz` ones: a plain
 * incus-simplestreams tree shows no image to LXD. An LXD item that copies the Incus one (same
 * path, hashes, size and combined_* fields) is all LXD needs, for every image kind. Checked with
 * the LXD 5.0.2 and Incus 6.0.4 clients against a tree written by incus-simplestreams 6.0.4:
 *
 * - split container (squashfs): listed and resolved by alias, type container;
 * - split VM (`disk-kvm.img` data item, `combined_disk-kvm-img_sha256` on the metadata item):
 *   listed and resolved, type virtual-machine. LXD reads `disk-kvm.img` itself: no `disk1.img`
 *   item nor `combined_disk1-img_sha256` field is needed, and adding them breaks LXD: it then
 *   lists the image twice under one fingerprint and `lxc image info` fails with "More than one
 *   match for the provided partial fingerprint";
 * - unified tarball: listed and resolved, but always as a container (see image/kinds.ts);
 * - the Incus client ignores the LXD items (same listing with or without them), and
 *   `incus-simplestreams verify` and `prune` pass on a tree holding them.
 */
import { cloneIndex, type ImagesIndex, type SimplestreamsItem, type SimplestreamsVersion } from './images-index.js';

/** Each Incus item type and the LXD item type that copies it. */
const LXD_COPIES: ReadonlyArray<readonly [incus: string, lxd: string]> = [
  ['incus.tar.xz', 'lxd.tar.xz'],
  ['incus_combined.tar.gz', 'lxd_combined.tar.gz'],
];

const LXD_TYPES = new Set(LXD_COPIES.map(([, lxd]) => lxd));

function isLxdItem(key: string, item: SimplestreamsItem | undefined): boolean {
  return LXD_TYPES.has(key) || (item !== undefined && LXD_TYPES.has(item.ftype));
}

function withLxdVersion(version: SimplestreamsVersion): SimplestreamsVersion {
  const items: Record<string, SimplestreamsItem> = {};
  // Drop every LXD item first: a copy is rebuilt from the current Incus item, and one whose Incus
  // item is gone (a removed or replaced image) must not keep pointing at its files.
  for (const [key, item] of Object.entries(version.items)) {
    if (!isLxdItem(key, item)) items[key] = item;
  }
  for (const [incus, lxd] of LXD_COPIES) {
    const source = version.items[incus];
    if (source) items[lxd] = { ...source, ftype: lxd };
  }
  return { ...version, items };
}

/**
 * A copy of the index in which every `incus.tar.xz` item has an `lxd.tar.xz` twin and every
 * `incus_combined.tar.gz` item an `lxd_combined.tar.gz` twin (same path, hashes, size and
 * combined fields), so that LXD clients list and resolve the same images, fingerprints and
 * aliases as Incus clients. LXD items whose Incus item no longer exists are removed; nothing else
 * changes. Idempotent; the index given is not modified.
 */
export function withLxdItems(index: ImagesIndex): ImagesIndex {
  const copy = cloneIndex(index);
  for (const product of Object.values(copy.products)) {
    if (!product.versions) continue;
    for (const [serial, version] of Object.entries(product.versions)) {
      if (version?.items) product.versions[serial] = withLxdVersion(version);
    }
  }
  return copy;
}
