/**
 * A bucket made to serve what the registry's server serves (the host input's server, under its
 * registry lock, after its commit): every file the committed index names first (copied inside
 * the bucket from this run's uploads, or else read from the server), then images/SHA256SUMS and
 * the index objects, so the bucket never serves an index naming a file it lacks. A file the index
 * no longer names stays for clients with a cached index as long as the server keeps it (its
 * retired list) and for two hours after the bucket's own index stopped naming it (the bucket's
 * retired list, <prefix>.lxc-publish/retired: a bucket that fell behind the server gets its own
 * grace). A file missing from the bucket, or held there at another size, is made good by the
 * next sync (a same-size object with other bytes is not looked for: the names are content
 * addressed, and only this action writes them). The action owns <prefix>images/ and
 * <prefix>streams/; only plainly named files directly in images/ are ever deleted.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ActionError, describeError, oneLine } from '../common/errors.js';
import * as log from '../common/log.js';
import { untrusted } from '../common/untrusted.js';
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
/** The files the bucket's index stopped naming, and when: "<unix seconds> images/<name>" lines. */
export const BUCKET_RETIRED = '.lxc-publish/retired';

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

/** The lines of a retired list ("<unix seconds> images/<name>"), those of another form left out. */
export function retiredEntries(text: string): { at: number; path: string }[] {
  return text.split('\n').flatMap((line) => {
    const match = /^([0-9]{1,12}) (images\/[A-Za-z0-9._+-]+)$/.exec(line);
    return match ? [{ at: Number(match[1]), path: match[2] as string }] : [];
  });
}

/** How far ahead of the runner's clock a stamp may be (another runner's clock) before it is taken as now. */
const CLOCK_SKEW_SECONDS = 300;

/**
 * The bucket's retired list after this sync: the files `previous` (the index the bucket serves
 * until now) names and `next` does not, stamped now (the bucket served them until now, whatever
 * an earlier sync that never changed the index wrote); and what the list had, less what is past
 * the grace (by the runners' clocks, which stamped it) or named again. One line per file; a stamp
 * in the future counts as now.
 */
export function nextBucketRetired(
  listed: { at: number; path: string }[],
  previous: Set<string>,
  next: Set<string>,
  nowSeconds: number,
): { at: number; path: string }[] {
  const retiring = new Set([...previous].filter((path) => !next.has(path)));
  const entries = new Map([...retiring].map((path) => [path, nowSeconds]));
  for (const entry of listed) {
    if (retiring.has(entry.path) || next.has(entry.path)) continue;
    const at = entry.at > nowSeconds + CLOCK_SKEW_SECONDS ? nowSeconds : entry.at;
    if (nowSeconds - at < RETIRE_GRACE_SECONDS) entries.set(entry.path, Math.max(at, entries.get(entry.path) ?? 0));
  }
  return [...entries].map(([path, at]) => ({ at, path }));
}

/** What to copy, read from the server and delete so that the bucket serves the index. */
export function planSync(options: {
  named: NamedFile[];
  stored: StoredObject[];
  uploads: BucketUpload[];
  /** Files kept for clients with an older index: the server's retired list and the bucket's. */
  kept: Set<string>;
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
      // Only what the action writes there: a plainly named file directly in images/.
      if (!IMAGE_PATH.test(object.path) || object.path === SHA256SUMS_PATH) return false;
      return !named.has(object.path) && !options.kept.has(object.path);
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

/** The files the server's index names, or an error saying why a bucket cannot hold them. */
function servedFiles(imagesJson: Buffer, where: string): NamedFile[] {
  try {
    return namedFiles(parseIndexText(imagesJson, where));
  } catch (error) {
    if (error instanceof ActionError) throw error;
    throw new ActionError(
      `${where} on the server cannot be served from a bucket: ${untrusted(describeError(error))}. Nothing was ` +
        'copied; run the check sub-action on the server (it names what to do), then the step again.',
      'simplestreams-dir',
    );
  }
}

/** The paths an index text names, or none when it cannot be read (a bucket's own index, say). */
function namedIn(text: Buffer | undefined, where: string): Set<string> {
  if (!text) return new Set();
  try {
    return new Set(namedFiles(parseIndexText(text, where)).map((file) => file.path));
  } catch {
    return new Set();
  }
}

/** Uploads a file of the server's to the bucket, checked against the index's sha256 as it passes. */
async function copyFromServer(registry: Registry, bucket: Bucket, file: NamedFile): Promise<void> {
  log.info(`${file.path}: not in the bucket; copying it from the server (${file.size} bytes)`);
  const chunks = verified(registryFileChunks(registry, file.path, file.size), file);
  await bucket.upload(file.path, chunks, IMAGE_FILE_HEADERS, { sha256: file.sha256 });
}

/** The named files the bucket lacks (or holds at another size). */
async function lacking(bucket: Bucket, named: NamedFile[]): Promise<NamedFile[]> {
  const sizes = new Map<string, number>();
  for await (const object of bucket.list('images/')) sizes.set(object.path, object.size);
  return named.filter((file) => sizes.get(file.path) !== file.size);
}

/**
 * Before any lock is taken: copies from the server the files its live index names that the
 * bucket lacks (a bucket listed for the first time on a registry with releases, one that fell
 * behind), so that the sync under the registry lock has little left to do and other runs wait
 * for it briefly. Names are never given to other bytes, so a file put there early is right
 * whenever an index names it. Best effort: what fails here (a file the server retired
 * meanwhile) the sync does, or reports. Returns how many files were copied.
 */
export async function prefillBucket(registry: Registry, bucket: Bucket): Promise<number> {
  try {
    const imagesJson = await readRegistryFile(registry, IMAGES_JSON);
    if (!imagesJson) return 0;
    const missing = await lacking(bucket, namedFiles(parseIndexText(imagesJson, IMAGES_JSON)));
    for (const file of missing) await copyFromServer(registry, bucket, file);
    return missing.length;
  } catch (error) {
    log.info(
      `Copying what the bucket lacks before the lock stopped (${oneLine(describeError(error))}); the sync under the lock goes on.`,
    );
    return 0;
  }
}

export interface SyncOptions {
  /** What this run uploaded to the bucket. */
  uploads?: BucketUpload[];
  /** Whether the server's registry lock was lost: nothing is written to the index then. */
  lost?: () => boolean;
  now?: () => Date;
}

/**
 * Makes the bucket serve the registry the server serves, reading the server through `registry`
 * (which must hold its registry lock).
 */
export async function syncBucket(registry: Registry, bucket: Bucket, options: SyncOptions = {}): Promise<SyncResult> {
  const now = options.now ?? (() => new Date());
  const uploads = options.uploads ?? [];
  const imagesJson = await readRegistryFile(registry, IMAGES_JSON);
  const indexJson = await readRegistryFile(registry, INDEX_JSON);
  if (!imagesJson || !indexJson) {
    // A registry with nothing published yet: nothing to serve.
    return { indexChanged: false, changedPaths: [], copied: 0, fromServer: 0, removed: 0 };
  }
  const where = posix.join(registry.paths.simplestreamsDir, IMAGES_JSON);
  const named = servedFiles(imagesJson, where);
  const sums = await readRegistryFile(registry, SHA256SUMS_PATH);
  // The server trims its list under the lock before this reads it: every line it keeps counts.
  const serverRetired = retiredEntries(
    (await readRegistryFile(registry, '.lxc-publish/retired'))?.toString('utf8') ?? '',
  );
  const bucketRetired = nextBucketRetired(
    retiredEntries((await bucket.read(BUCKET_RETIRED))?.toString('utf8') ?? ''),
    namedIn(await bucket.read(IMAGES_JSON), `${bucket.settings.name}:${IMAGES_JSON}`),
    new Set(named.map((file) => file.path)),
    Math.floor(now().getTime() / 1000),
  );
  const kept = new Set([...serverRetired, ...bucketRetired].map((entry) => entry.path));
  const stored: StoredObject[] = [];
  for (const folder of ['images/', UPLOADS_FOLDER]) for await (const object of bucket.list(folder)) stored.push(object);
  const plan = planSync({ named, stored, uploads, kept, now: now() });

  for (const { file, from } of plan.copy) {
    await bucket.copy(from, file.path, {
      size: file.size,
      headers: IMAGE_FILE_HEADERS,
      metadata: { sha256: file.sha256 },
    });
  }
  for (const file of plan.fromServer) await copyFromServer(registry, bucket, file);
  // Every named file is there: the index may name them now. What it stops naming is listed first.
  const changedPaths: string[] = [];
  // A run whose lease ran out must not put back an index older than the next run's, nor change
  // what that run's list says.
  const stillHeld = (): void => {
    if (options.lost?.()) throw new LeaseLostForBucket(bucket.settings.name);
  };
  const write = async (path: string, bytes: Buffer, headers: ObjectHeaders): Promise<void> => {
    stillHeld();
    if (await putIfChanged(bucket, path, bytes, headers)) changedPaths.push(path);
  };
  stillHeld();
  const retiredText = bucketRetired.map((entry) => `${entry.at} ${entry.path}\n`).join('');
  await putIfChanged(bucket, BUCKET_RETIRED, Buffer.from(retiredText), SUMS_HEADERS);
  if (sums) await write(SHA256SUMS_PATH, sums, SUMS_HEADERS);
  await write(IMAGES_JSON, imagesJson, INDEX_HEADERS);
  await write(INDEX_JSON, indexJson, INDEX_HEADERS);
  try {
    stillHeld();
    await bucket.delete(plan.remove);
  } catch (error) {
    // The bucket serves the new index whole: a refused clean-up is for the owner to see, not a failure.
    log.warning(
      `${describeError(error)} The bucket serves the new index; what it no longer needs stays until a run may delete it.`,
      { title: 'lxc-publish: a bucket was not cleaned up' },
    );
  }
  return {
    indexChanged: changedPaths.includes(IMAGES_JSON) || changedPaths.includes(INDEX_JSON),
    changedPaths,
    copied: plan.copy.length,
    fromServer: plan.fromServer.length,
    removed: plan.remove.filter((path) => !path.startsWith(UPLOADS_FOLDER)).length,
  };
}

/** The server's registry lock was lost while a bucket was being brought up to date. */
export class LeaseLostForBucket extends ActionError {
  constructor(name: string) {
    super(
      `Bucket ${name}: the lease on the server's registry lock was lost while the bucket was brought up to date (the ` +
        'connection stalled?), so its index was left as it was: another run may hold the lock now. Run the step again.',
    );
  }
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
    throw new ActionError(
      `${file.path} on the server has sha256 ${got}, not ${file.sha256} as the index says: it was damaged there, ` +
        "so it was not copied to the bucket, and the bucket's index was left as it was. Run the check sub-action on the " +
        'server (it names what to do), then the step again.',
      'simplestreams-dir',
    );
}
