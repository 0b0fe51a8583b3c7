/**
 * An S3-compatible bucket (AWS S3, Cloudflare R2, Backblaze B2, Ceph RGW, MinIO) through the
 * official SDK: the few operations a bucket member of the fleet needs, each failing with an error
 * that names the bucket, what failed and what to do. Objects live under the entry's prefix:
 *   <prefix>images/<name>, <prefix>streams/v1/*.json   what clients read (the registry's tree)
 *   <prefix>.lxc-publish/uploads/<run>/<name>         a run's uploads, copied into images/ once
 *                                                     the server committed (then removed)
 */
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCopyCommand,
  AbortMultipartUploadCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createHash } from 'node:crypto';
import { ActionError, describeError, oneLine } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';

/** One bucket of the fleet, as the buckets input gives it. */
export interface BucketSettings {
  /** How the log, the summary and the servers output name it. */
  name: string;
  /** https://host[:port] */
  endpoint: string;
  bucket: string;
  /** '' or a folder ending with "/". */
  prefix: string;
  region: string;
  /** Path-style URLs (endpoint/bucket/key): Ceph, MinIO and most self-hosted stores need them. */
  pathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
}

/** An object as a listing shows it. */
export interface StoredObject {
  /** The key without the bucket's prefix. */
  path: string;
  size: number;
  lastModified: Date;
}

/** The headers an object is served with. */
export interface ObjectHeaders {
  ContentType: string;
  CacheControl: string;
}

/** How a stored object is served: what a CDN in front may keep, and for how long (as the server guide's nginx). */
export const IMAGE_FILE_HEADERS: ObjectHeaders = {
  ContentType: 'application/octet-stream',
  CacheControl: 'public, max-age=31536000, immutable',
};
export const INDEX_HEADERS: ObjectHeaders = {
  ContentType: 'application/json',
  CacheControl: 'public, max-age=10, stale-if-error=3600',
};
export const SUMS_HEADERS: ObjectHeaders = { ContentType: 'text/plain', CacheControl: INDEX_HEADERS.CacheControl };

/** Parts of an upload from the runner: 16 MiB, 4 at a time (64 MiB in memory at most). */
export const PART_BYTES = 16 * 1024 * 1024;
const PARTS_AT_ONCE = 4;
/**
 * CopyObject copies up to 5 GiB at once, but a store may send nothing while it copies, and the
 * idle timeout below would end a long copy: a larger object is copied in parts of this size.
 */
export const SINGLE_COPY_LIMIT = 512 * 1024 * 1024;
const COPY_PART_BYTES = 512 * 1024 * 1024;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;
/**
 * A store that accepts a connection and never answers must not hold the step (and the server's
 * registry lock, which a sync runs under) for good: a connection gets this long to open, and a
 * request this long without a byte moving; each request is tried MAX_ATTEMPTS times.
 */
const CONNECT_TIMEOUT_MS = 30_000;
const IDLE_TIMEOUT_MS = 120_000;
const MAX_ATTEMPTS = 3;

/**
 * The failure of a bucket operation, saying which bucket, what was done and what to do; `refused`:
 * the store's code for one key of a batch it refused (DeleteObjects answers 200 with those).
 */
export function bucketError(settings: BucketSettings, what: string, error: unknown, refused?: string): ActionError {
  const status =
    refused === 'AccessDenied' ? 403 : error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
  const code = refused ?? (error instanceof S3ServiceException ? error.name : undefined);
  const said = untrusted(oneLine(describeError(error)).slice(0, 300));
  const detail = status === undefined ? said : `HTTP ${status}: ${said}`;
  let fix: string;
  if (code === 'NoSuchKey')
    fix =
      'an object was gone when it was read (deleted meanwhile by another run, a lifecycle rule on .lxc-publish/, or ' +
      'another process?); run the step again';
  else if (code === 'NoSuchBucket' || status === 404)
    fix = `check that bucket ${settings.bucket} exists at ${settings.endpoint} (and path-style for this provider)`;
  else if (status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch')
    fix =
      "check the bucket's credentials (access-key-id-env, secret-access-key-env) and that they may read, write, " +
      `list and delete under ${settings.prefix || 'the bucket'}`;
  else if (status === 301 || code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed')
    fix = `check region (the bucket is in another region than ${settings.region})`;
  else if (status === undefined && refused === undefined)
    fix = `check endpoint ${settings.endpoint}: it is reachable from the runner and speaks S3`;
  else fix = 'run the step again; if it fails again, check the provider status';
  return new ActionError(`Bucket ${settings.name}: ${what} failed (${detail}); ${fix}.`, 'buckets');
}

export class Bucket {
  private readonly client: S3Client;

  constructor(
    readonly settings: BucketSettings,
    timeouts: { connectMs: number; idleMs: number } = { connectMs: CONNECT_TIMEOUT_MS, idleMs: IDLE_TIMEOUT_MS },
  ) {
    this.client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: settings.pathStyle,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      // Checksums where this code asks for them (sha256 on uploads); the SDK's own defaults break
      // streamed uploads on stores without them (Ceph RGW 16: 411 MissingContentLength).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: MAX_ATTEMPTS,
      // An idle timeout, not one on the whole request: a large part or copy may take long, moving bytes.
      requestHandler: new NodeHttpHandler({ connectionTimeout: timeouts.connectMs, socketTimeout: timeouts.idleMs }),
    });
    // DeleteObjects must carry a checksum of its body: the SDK sends a CRC32, which some stores
    // (older MinIO, several hosted ones) do not take; Content-MD5 every S3 store takes.
    this.client.middlewareStack.add(
      (next, context) => (args) => {
        const request = args.request as { body?: unknown; headers?: Record<string, string> };
        if (context.commandName === 'DeleteObjectsCommand' && typeof request.body === 'string' && request.headers)
          request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
        return next(args);
      },
      { step: 'build', name: 'deleteObjectsContentMd5' },
    );
  }

  /** The object key of a path of the registry's tree (or of this action's state). */
  key(path: string): string {
    return `${this.settings.prefix}${path}`;
  }

  private async call<T>(what: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ActionError) throw error;
      throw bucketError(this.settings, what, error);
    }
  }

  /** The bucket is there and the credentials are taken. */
  async check(): Promise<void> {
    await this.call(`Reaching bucket ${this.settings.bucket}`, () =>
      this.client.send(new HeadBucketCommand({ Bucket: this.settings.bucket })),
    );
  }

  /**
   * Uploads a stream in parts sent at once, each with its sha256 (checked by the stores that
   * check it); returns when the object is complete.
   */
  async upload(
    path: string,
    body: AsyncIterable<Buffer>,
    headers: ObjectHeaders,
    metadata: Record<string, string> = {},
  ): Promise<void> {
    await this.call(`Uploading ${path}`, async () => {
      const upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.settings.bucket,
          Key: this.key(path),
          Body: Readable.from(body, { objectMode: false }),
          ChecksumAlgorithm: 'SHA256',
          ...headers,
          Metadata: metadata,
        },
        partSize: PART_BYTES,
        queueSize: PARTS_AT_ONCE,
        leavePartsOnError: false,
      });
      await upload.done();
    });
  }

  /** Writes a small object whole (an index), with its sha256. */
  async put(path: string, bytes: Buffer, headers: ObjectHeaders, metadata: Record<string, string> = {}): Promise<void> {
    await this.call(`Writing ${path}`, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: this.key(path),
          Body: bytes,
          ContentLength: bytes.length,
          ChecksumAlgorithm: 'SHA256',
          ...headers,
          Metadata: metadata,
        }),
      ),
    );
  }

  /** A small object's bytes (an index), or undefined when there is none. */
  async read(path: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer | undefined> {
    const head = await this.head(path);
    if (!head) return undefined;
    if (head.size > maxBytes)
      throw bucketError(this.settings, `Reading ${path}`, new Error(`${head.size} bytes, over ${maxBytes}`));
    return this.call(`Reading ${path}`, async () => {
      const object = await this.client.send(
        new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.key(path) }),
      );
      return Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    });
  }

  /** Size and metadata of an object, or undefined when there is none. */
  async head(path: string): Promise<{ size: number; metadata: Record<string, string> } | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.key(path) }));
      return { size: head.ContentLength ?? -1, metadata: head.Metadata ?? {} };
    } catch (error) {
      if (error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === 'NotFound'))
        return undefined;
      throw bucketError(this.settings, `Reading ${path}`, error);
    }
  }

  /**
   * Copies an object inside the bucket (the store copies; nothing goes through the runner), with
   * new headers and metadata; in parts when it is larger than one copy may be.
   */
  async copy(
    from: string,
    to: string,
    options: { size: number; headers: ObjectHeaders; metadata: Record<string, string> },
    singleCopyLimit = SINGLE_COPY_LIMIT,
  ): Promise<void> {
    const { bucket } = this.settings;
    const source = `${bucket}/${encodeURI(this.key(from))}`;
    const target = { Bucket: bucket, Key: this.key(to), ...options.headers, Metadata: options.metadata };
    await this.call(`Copying ${from} to ${to}`, async () => {
      if (options.size <= singleCopyLimit) {
        await this.client.send(new CopyObjectCommand({ ...target, CopySource: source, MetadataDirective: 'REPLACE' }));
        return;
      }
      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand(target));
      try {
        const parts = [];
        const partBytes = Math.min(COPY_PART_BYTES, singleCopyLimit);
        for (let start = 0, number = 1; start < options.size; start += partBytes, number++) {
          const end = Math.min(start + partBytes, options.size) - 1;
          const part = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: bucket,
              Key: this.key(to),
              UploadId,
              PartNumber: number,
              CopySource: source,
              CopySourceRange: `bytes=${start}-${end}`,
            }),
          );
          parts.push({ PartNumber: number, ETag: part.CopyPartResult?.ETag });
        }
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: this.key(to),
            UploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
      } catch (error) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: this.key(to), UploadId }))
          .catch(() => undefined);
        throw error;
      }
    });
  }

  /** The objects under a folder of the prefix, a page (up to 1,000) at a time. */
  async *list(folder: string): AsyncGenerator<StoredObject> {
    let token: string | undefined;
    const prefix = this.key(folder);
    const seen = new Set<string>();
    do {
      const page = await this.call(`Listing ${folder}`, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key?.startsWith(prefix)) continue;
        yield {
          path: object.Key.slice(this.settings.prefix.length),
          size: object.Size ?? -1,
          lastModified: object.LastModified ?? new Date(0),
        };
      }
      const next = page.IsTruncated ? page.NextContinuationToken : undefined;
      // A store that hands back a page again would keep this going for good.
      if (next !== undefined && seen.has(next))
        throw bucketError(this.settings, `Listing ${folder}`, new Error('the store returned a page twice'));
      if (next !== undefined) seen.add(next);
      token = next;
    } while (token);
  }

  /** Deletes objects, 1,000 per request; fails naming the first the store refused. */
  async delete(paths: readonly string[]): Promise<void> {
    for (let start = 0; start < paths.length; start += DELETE_BATCH) {
      const batch = paths.slice(start, start + DELETE_BATCH);
      const result = await this.call(`Deleting ${batch.length} objects`, () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.settings.bucket,
            Delete: { Objects: batch.map((path) => ({ Key: this.key(path) })), Quiet: true },
          }),
        ),
      );
      const refused = result.Errors?.[0];
      if (refused) {
        throw bucketError(
          this.settings,
          `Deleting ${untrusted(refused.Key ?? '')}`,
          new Error(`${refused.Code ?? ''} ${refused.Message ?? ''}`),
          refused.Code ?? 'refused',
        );
      }
    }
  }

  close(): void {
    this.client.destroy();
  }
}
