/**
 * Where things live on the server. All state is under simplestreams-dir, on the same file system
 * as the live tree, so that renames are atomic:
 *   .lxc-publish/lock[.gate]        the registry lock: one writer at a time (registry/lock.ts),
 *                                   and the gate its fenced operations hold
 *   .lxc-publish/locks/<key>[.gate] an image's lock, held by the run uploading, staging and
 *                                   publishing it (whatever its upload-dir)
 *   .lxc-publish/holders/<token>    one file per lease, locked by its holder while it lives
 *   .lxc-publish/staging/<key>/     where incus-simplestreams add writes a new image's files
 *   .lxc-publish/next/<token>/      a commit's payload, checked before anything is renamed
 *   .lxc-publish/previous/          the index and SHA256SUMS before the last commit (to roll back)
 *   .lxc-publish/retired            files the index no longer names (replaced, dropped, removed),
 *                                   kept for a while for clients with a cached index
 * and under upload-dir:
 *   <key>/<name>[.partial], <key>/.write.lock, <key>/.in-use   one directory per image
 * where <key> names the image in this registry (imageKey): two registries sharing an upload-dir
 * never share an image's directory, lock or staging tree.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Compression, LocalFile, LocalImage } from '../image/local-image.js';

const STATE_DIR = '.lxc-publish';
/** Files of a replaced version stay downloadable this long: clients cache an index for about an hour. */
export const RETIRE_GRACE_SECONDS = 2 * 3600;
/** Partial uploads of runs that never came back are removed after this long (until then they resume). */
export const UPLOAD_GRACE_SECONDS = 24 * 3600;

export interface RegistryPaths {
  simplestreamsDir: string;
  uploadDir: string;
}

export const stateDir = (paths: RegistryPaths): string => posix.join(paths.simplestreamsDir, STATE_DIR);
export const liveIndexPath = (paths: RegistryPaths): string =>
  posix.join(paths.simplestreamsDir, 'streams/v1/images.json');
export const lockPath = (paths: RegistryPaths): string => posix.join(paths.simplestreamsDir, STATE_DIR, 'lock');
export const stagingDir = (paths: RegistryPaths, uploadKey: string): string =>
  posix.join(paths.simplestreamsDir, STATE_DIR, 'staging', uploadKey);
/** An image's lock: in the state directory, so that runs with different upload-dirs share it. */
export const imageLockPath = (paths: RegistryPaths, uploadKey: string): string =>
  posix.join(paths.simplestreamsDir, STATE_DIR, 'locks', uploadKey);

/** One file to upload: the local file and its fixed name in the image's upload directory. */
export interface UploadFile {
  local: LocalFile;
  name: string;
}

/** An image's place on the server: its upload directory and its files there, metadata first. */
export interface RemoteImage {
  /** The image's key in this registry (imageKey). */
  key: string;
  /** upload-dir/<key> */
  dir: string;
  /** In fingerprint order: the metadata (or unified) tarball, then the data file. */
  files: UploadFile[];
}

const TARBALL_EXTENSIONS: Record<Compression, string> = {
  xz: '.tar.xz',
  gzip: '.tar.gz',
  bzip2: '.tar.bz2',
  zstd: '.tar.zst',
  none: '.tar',
};

const DATA_NAMES = {
  squashfs: () => 'rootfs.squashfs',
  qcow2: () => 'disk.qcow2',
  'rootfs-tarball': (compression: Compression) => `rootfs${TARBALL_EXTENSIONS[compression]}`,
};

/**
 * The key of an image in one registry: its upload key (image/hashing.ts: known before the
 * fingerprint, which is computed while uploading) and simplestreams-dir, so that runs for two
 * registries on one server, sharing an upload-dir, never touch each other's uploads.
 */
export function imageKey(paths: RegistryPaths, uploadKey: string): string {
  return createHash('sha256').update(`lxc-publish image\n${paths.simplestreamsDir}\n${uploadKey}\n`).digest('hex');
}

/** Where the image goes on the server. Fixed names: nothing from the runner's file names reaches it. */
export function remoteImage(paths: RegistryPaths, uploadKey: string, image: LocalImage): RemoteImage {
  const key = imageKey(paths, uploadKey);
  const metadataName = (image.data ? 'metadata' : 'image') + TARBALL_EXTENSIONS[image.metadata.compression];
  const files: UploadFile[] = [{ local: image.metadata, name: metadataName }];
  if (image.data) {
    files.push({ local: image.data, name: DATA_NAMES[image.data.kind](image.data.compression ?? 'none') });
  }
  return { key, dir: posix.join(paths.uploadDir, key), files };
}

/** The server-side path of each of the image's files, metadata first. */
export function remotePaths(image: RemoteImage): string[] {
  return image.files.map((file) => posix.join(image.dir, file.name));
}
