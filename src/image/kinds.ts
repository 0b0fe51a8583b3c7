/**
 * What clients can do with each kind of image, as warnings for the log: the Incus 6.0 client
 * (and LXD 5.0) type every unified (single tarball) image as a container, so a unified VM reaches
 * neither; a split VM (incus.tar.xz + disk.qcow2) reaches both. See simplestreams/unified-vm.ts.
 */
import type { ImageType } from '../simplestreams/images-index.js';

/**
 * What a user of an Incus 6.0 client (Debian 12 backports, Debian 13, Ubuntu 24.04) cannot do
 * with an image of this kind: one message per problem, for the log.
 */
export function incusWarnings(imageType: ImageType, unified: boolean): string[] {
  if (imageType !== 'virtual-machine' || !unified) return [];
  return [
    'Incus clients up to 6.0 list unified (single tarball) images as containers: they show this ' +
      'virtual-machine image as CONTAINER and `incus launch --vm` does not find it. To reach every client, ' +
      'publish the VM as a split image (distrobuilder ' +
      'build-incus --vm, without --type=unified: incus.tar.xz as metadata, disk.qcow2 as rootfs).',
  ];
}

/**
 * What an LXD user cannot do with an image of this kind, published with LXD items: one message
 * per problem, for the log (empty when LXD users can launch it).
 */
export function lxdWarnings(imageType: ImageType, unified: boolean): string[] {
  const warnings: string[] = [];
  if (imageType === 'virtual-machine' && unified) {
    warnings.push(
      'LXD treats unified (single tarball) images as containers: it lists this virtual-machine image as a ' +
        'container, `lxc launch --vm` does not find it, and launching it as a container fails. LXD users ' +
        'cannot launch it. To publish a VM for LXD users, build it as a split image (distrobuilder ' +
        'build-incus --vm, without --type=unified) and pass incus.tar.xz as metadata and disk.qcow2 as rootfs.',
    );
  }
  return warnings;
}
