/**
 * Image kinds in the simplestreams index: pure functions, no I/O.
 *
 * A unified tarball is published as one `incus_combined.tar.gz` item (whatever its compression)
 * whose sha256 is the fingerprint. incus-simplestreams 6.0 writes nothing on that item that says
 * whether the tarball holds a container (rootfs/) or a VM (rootfs.img); 7.0.1 and later write
 * `combined_type`. The Incus 6.0 client (and LXD 5.0) types every combined item as a container,
 * whatever its fields: `incus image list` shows a unified VM as CONTAINER and
 * `incus image info --vm REMOTE:alias` does not find it (checked with Incus 6.0.4 and LXD 5.0.2).
 * No item field changes that for those clients; only a split image (incus.tar.xz + disk.qcow2)
 * is a VM to them.
 */
import type { ImagesIndex } from './simplestreams.js';

const UNIFIED_ITEMS = ['incus_combined.tar.gz', 'lxd_combined.tar.gz'];

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
  const copy = JSON.parse(JSON.stringify(index)) as ImagesIndex;
  for (const product of Object.values(copy.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      const unified = version.items?.['incus_combined.tar.gz'];
      if (!unified || unified.sha256 !== fingerprint) continue;
      for (const key of UNIFIED_ITEMS) {
        const item = version.items[key];
        if (item) item['combined_type'] = 'virtual-machine';
      }
    }
  }
  return copy;
}

/**
 * What a user of an Incus 6.0 client (Debian 12 backports, Debian 13, Ubuntu 24.04) cannot do
 * with an image of this kind: one message per problem, for the log.
 */
export function incusWarnings(imageType: 'container' | 'virtual-machine', unified: boolean): string[] {
  if (imageType !== 'virtual-machine' || !unified) return [];
  return [
    'Incus clients up to 6.0 list unified (single tarball) images as containers: they show this ' +
      'virtual-machine image as CONTAINER and `incus launch --vm` does not find it. To reach every client, ' +
      'publish the VM as a split image (distrobuilder ' +
      'build-incus --vm, without --type=unified: incus.tar.xz as metadata, disk.qcow2 as rootfs).',
  ];
}
