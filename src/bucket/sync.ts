/**
 * A bucket made to serve what the registry's server serves (the host input's server, under its
 * registry lock, after its commit): every file the committed index names first (copied inside
 * the bucket from this run's uploads, or else read from the server), then images/SHA256SUMS and
 * the index objects, so the bucket never serves an index naming a file it lacks. Files the index
 * no longer names stay as long as the server keeps them for clients with a cached index (its
 * retired list), and are deleted with them. Anything missing or left by a failed run is made
 * good by the next sync: a bucket converges on the server whatever happened before.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import * as log from '../common/log.js';
import { parseIndexText } from '../registry/read.js';
import { readRegistryFile, registryFileChunks } from '../registry/export.js';
import type { Registry } from '../registry/registry.js';
import { RETIRE_GRACE_SECONDS, UPLOAD_GRACE_SECONDS } from '../registry/layout.js';
import { SHA256SUMS_PATH } from '../simplestreams/checksums.js';
import type { ImagesIndex } from '../simplestreams/images-index.js';
import {
  Bucket,
  IMAGE_FILE_HEADERS,
  INDEX_HEADERS,
  SUMS_HEADERS,
  type ObjectHeaders,
  type StoredObject,
} from './store.js';

export const IMAGES_JSON = 'streams/v1/images.json';
export const INDEX_JSON = 'streams/v1/index.json';
/** This action's uploads in a bucket, one folder per run. */
export const UPLOADS_FOLDER = '.lxc-publish/uploads/';

const IMAGE_PATH = /^images\/[A-Za-z0-9._+-]+$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** A file the index names, as the index describes it. */
export interface NamedFile {
  path: string;
  sha256: string;
  size: number;
}

/** A file this run uploaded to the bucket, under its uploads folder. */
export interface BucketUpload {
  path: string;
  sha256: string;
  size: number;
}

/** What a sync does to a bucket, planned without I/O. */
export interface SyncPlan {
  /** Named files the bucket lacks that this run uploaded: copied inside the bucket. */
  copy: { file: NamedFile; from: string }[];
  /** Named files the bucket lacks otherwise: read from the server. */
  fromServer: NamedFile[];
  /** Objects to delete, after the index: files no longer named nor kept, and old uploads. */
  remove: string[];
}

/** Every file the index names in images/, each once; a path named with two hashes or sizes is refused. */
export function namedFiles(index: ImagesIndex): NamedFile[] {
  const files = new Map<string, NamedFile>();
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      for (const item of Object.values(version.items)) {
        if (
          !IMAGE_PATH.test(item.path) ||
          !SHA256.test(item.sha256) ||
          !Number.isSafeInteger(item.size) ||
          item.size < 0
        )
          throw new Error(`the index names ${JSON.stringify(item.path)} in a form a bucket cannot hold`);
        const known = files.get(item.path);
        if (known && (known.sha256 !== item.sha256 || known.size !== item.size))
          throw new Error(`the index names ${item.path} with two different hashes or sizes`);
        files.set(item.path, { path: item.path, sha256: item.sha256, size: item.size });
      }
    }
  }
  return [...files.values()];
}

/** The paths the server's retired list keeps (retired less than the grace ago). */
export function keptRetired(text: string, nowSeconds: number): Set<string> {
  const kept = new Set<string>();
  for (const line of text.split('\n')) {
    const match = /^([0-9]{1,12}) (images\/[A-Za-z0-9._+-]+)$/.exec(line);
    if (match && nowSeconds - Number(match[1]) < RETIRE_GRACE_SECONDS) kept.add(match[2] as string);
  }
  return kept;
}

/** What to copy, read from the server and delete so that the bucket serves the index. */
export function planSync(options: {
  named: NamedFile[];
  stored: StoredObject[];
  uploads: BucketUpload[];
  retired: Set<string>;
  now: Date;
}): SyncPlan {
  const stored = new Map(options.stored.map((object) => [object.path, object]));
  const copy: SyncPlan['copy'] = [];
  const fromServer: NamedFile[] = [];
  for (const file of options.named) {
    if (stored.get(file.path)?.size === file.size) continue;
    const upload = options.uploads.find((u) => u.sha256 === file.sha256 && u.size === file.size);
    if (upload) copy.push({ file, from: upload.path });
    else fromServer.push(file);
  }
  const named = new Set(options.named.map((file) => file.path));
  const ownUploads = new Set(options.uploads.map((upload) => upload.path));
  const remove = options.stored
    .filter((object) => {
      if (object.path.startsWith(UPLOADS_FOLDER))
        return (
          ownUploads.has(object.path) ||
          options.now.getTime() - object.lastModified.getTime() > UPLOAD_GRACE_SECONDS * 1000
        );
      return object.path !== SHA256SUMS_PATH && !named.has(object.path) && !options.retired.has(object.path);
    })
    .map((object) => object.path);
  return { copy, fromServer, remove };
}

/** What a sync changed. */
export interface SyncResult {
  /** The index objects the bucket now serves differ from what it served. */
  indexChanged: boolean;
  changedPaths: string[];
  copied: number;
  fromServer: number;
  /** Files deleted from images/ (the server no longer keeps them); this run's uploads aside. */
  removed: number;
}

const sha256Of = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Writes an object unless the bucket holds those bytes (by the sha256 this action records). */
async function putIfChanged(bucket: Bucket, path: string, bytes: Buffer, headers: ObjectHeaders): Promise<boolean> {
  const sha256 = sha256Of(bytes);
  const now = await bucket.head(path);
  if (now?.size === bytes.length && now.metadata['sha256'] === sha256) return false;
  await bucket.put(path, bytes, headers, { sha256 });
  return true;
}

/**
 * Makes the bucket serve the registry the server serves, reading the server through `registry`
 * (which must hold its registry lock). `uploads`: what this run uploaded to the bucket.
 */
export async function syncBucket(
  registry: Registry,
  bucket: Bucket,
  uploads: BucketUpload[] = [],
  now: () => Date = () => new Date(),
): Promise<SyncResult> {
  const imagesJson = await readRegistryFile(registry, IMAGES_JSON);
  const indexJson = await readRegistryFile(registry, INDEX_JSON);
  if (!imagesJson || !indexJson) {
    // A registry with nothing published yet: nothing to serve.
    return { indexChanged: false, changedPaths: [], copied: 0, fromServer: 0, removed: 0 };
  }
  const index = parseIndexText(imagesJson, posix.join(registry.paths.simplestreamsDir, IMAGES_JSON));
  const named = namedFiles(index);
  const sums = await readRegistryFile(registry, SHA256SUMS_PATH);
  const retiredText = (await readRegistryFile(registry, '.lxc-publish/retired'))?.toString('utf8') ?? '';
  const stored: StoredObject[] = [];
  for (const folder of ['images/', UPLOADS_FOLDER]) for await (const object of bucket.list(folder)) stored.push(object);
  const plan = planSync({
    named,
    stored,
    uploads,
    retired: keptRetired(retiredText, now().getTime() / 1000),
    now: now(),
  });

  for (const { file, from } of plan.copy) {
    await bucket.copy(from, file.path, {
      size: file.size,
      headers: IMAGE_FILE_HEADERS,
      metadata: { sha256: file.sha256 },
    });
  }
  for (const file of plan.fromServer) {
    log.info(`${file.path}: not in the bucket; copying it from the server (${file.size} bytes)`);
    const chunks = verified(registryFileChunks(registry, file.path, file.size), file);
    await bucket.upload(file.path, chunks, IMAGE_FILE_HEADERS, { sha256: file.sha256 });
  }
  // Every named file is there: the index may name them now.
  const changedPaths: string[] = [];
  if (sums && (await putIfChanged(bucket, SHA256SUMS_PATH, sums, SUMS_HEADERS))) changedPaths.push(SHA256SUMS_PATH);
  if (await putIfChanged(bucket, IMAGES_JSON, imagesJson, INDEX_HEADERS)) changedPaths.push(IMAGES_JSON);
  if (await putIfChanged(bucket, INDEX_JSON, indexJson, INDEX_HEADERS)) changedPaths.push(INDEX_JSON);
  await bucket.delete(plan.remove);
  return {
    indexChanged: changedPaths.includes(IMAGES_JSON) || changedPaths.includes(INDEX_JSON),
    changedPaths,
    copied: plan.copy.length,
    fromServer: plan.fromServer.length,
    removed: plan.remove.filter((path) => !path.startsWith(UPLOADS_FOLDER)).length,
  };
}

/** A file's chunks as read from the server, failing at the end unless they hash to what the index says. */
async function* verified(chunks: AsyncIterable<Buffer>, file: NamedFile): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  for await (const chunk of chunks) {
    hash.update(chunk);
    yield chunk;
  }
  const got = hash.digest('hex');
  if (got !== file.sha256)
    throw new Error(`${file.path} on the server has sha256 ${got}, not ${file.sha256} as the index says`);
}
