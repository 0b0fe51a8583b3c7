/** An image on the runner, as inspection found it (image/inspect.ts). */
import type { ImageType } from '../simplestreams/images-index.js';
import type { ImageMetadata } from './metadata.js';

/** A data file: squashfs (container), qcow2 (VM), or a raw rootfs tarball (container). */
export type DataKind = 'squashfs' | 'qcow2' | 'rootfs-tarball';
export type Compression = 'xz' | 'gzip' | 'bzip2' | 'zstd' | 'none';

export interface LocalFile {
  path: string;
  size: number;
  /** Device, inode, size and modification time when inspected: the upload checks it is still so. */
  identity?: string;
}

export interface DataFile extends LocalFile {
  kind: DataKind;
  /** Of a rootfs tarball. */
  compression?: Compression;
}

export interface LocalImage {
  /** The metadata tarball, or the unified tarball. */
  metadata: LocalFile & { compression: Compression };
  /** The data file of a split image; absent for a unified tarball. */
  data?: DataFile;
  imageType: ImageType;
  properties: ImageMetadata;
  /** Total bytes to publish. */
  size: number;
}

/** The image's files in fingerprint order: the metadata tarball, then the data file. */
export function imageFiles(image: LocalImage): LocalFile[] {
  return image.data ? [image.metadata, image.data] : [image.metadata];
}
