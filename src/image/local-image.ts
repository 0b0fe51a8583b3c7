/** An image on the runner, as inspection found it (image/inspect.ts). */
import type { FileHandle } from 'node:fs/promises';
import type { ImageType } from '../simplestreams/images-index.js';
import type { ImageMetadata } from './metadata.js';

/** A data file: squashfs (container), qcow2 (VM), or a raw rootfs tarball (container). */
export type DataKind = 'squashfs' | 'qcow2' | 'rootfs-tarball';
export type Compression = 'xz' | 'gzip' | 'bzip2' | 'zstd' | 'none';

/**
 * A file opened once by inspection (image/local-file.ts): every later read goes through `handle`,
 * up to `size`, so what was inspected is what is hashed and uploaded.
 */
export interface LocalFile {
  path: string;
  /** Bytes, as when the file was opened; nothing past it is read. */
  size: number;
  handle: FileHandle;
  /** Modification time when opened: a change is refused. */
  mtimeMs: number;
  /** The input that named it, for messages. */
  input: 'metadata' | 'rootfs';
}

export interface DataFile extends LocalFile {
  kind: DataKind;
  /** Of a rootfs tarball. */
  compression?: Compression;
  /** Of a rootfs tarball: what its headers declare (checked against the limits), and the tar stream's bytes. */
  tar?: { entries: number; bytes: number; stream: number };
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
