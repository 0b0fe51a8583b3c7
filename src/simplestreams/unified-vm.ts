/**
 * Unified VM images in the simplestreams index: pure functions, no I/O.
 *
 * A unified tarball is published as one `incus_combined.tar.gz` item (whatever its compression)
 * whose sha256 is the fingerprint. incus-simplestreams 6.0 writes nothing on that item that says
 * whether the tarball holds a container (rootfs/) or a VM (rootfs.img); 7.0.1 and later write
 * `combined_type`. The Incus 6.0 client (and LXD 5.0) types every combined item as a container,
 * whatever its fields: `incus image list` shows a unified VM as CONTAINER and
 * `incus image info --vm REMOTE:alias` does not find it (checked with Incus 6.0.4 and LXD 5.0.2).
 * No item field changes that for those clients; only a split image (incus.tar.xz + disk.qcow2)
 * is a VM to them (image/kinds.ts warns about it).
 */
import { cloneIndex, UNIFIED_ITEM, type ImagesIndex } from './images-index.js';

const UNIFIED_ITEMS = [UNIFIED_ITEM, 'lxd_combined.tar.gz'];

/**
 * A copy of the index in which the unified item(s) of the version with this fingerprint say
 * `combined_type: "virtual-machine"`, as incus-simplestreams 7.0.1+ writes it. Apply it to a
 * unified VM image's index (the staging one, or any index written after it): this action's own
 * reading of the index (findFingerprint, the image-type output) then types it right, as it does
 * for trees written by incus-simplestreams 7.0.1+. Harmless elsewhere: the Incus 6.0 client,
 * LXD 5.0 and `incus-simplestreams verify` ignore the field (checked). Note that 6.0's own `add`,
 * `remove` and `prune`, run by hand, rewrite images.json without it (they drop unknown fields).
 * Idempotent; the index given is not modified.
 */
export function markUnifiedVm(index: ImagesIndex, fingerprint: string): ImagesIndex {
  const copy = cloneIndex(index);
  for (const product of Object.values(copy.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      const unified = version.items?.[UNIFIED_ITEM];
      if (!unified || unified.sha256 !== fingerprint) continue;
      for (const key of UNIFIED_ITEMS) {
        const item = version.items[key];
        if (item) item['combined_type'] = 'virtual-machine';
      }
    }
  }
  return copy;
}
