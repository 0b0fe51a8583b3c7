/**
 * A release's files uploaded to a bucket straight from the runner, through the same single read
 * of each file as the servers' uploads (registry/shared-reads.ts), under this run's uploads
 * folder: nothing a client reads changes until the sync after the server's commit copies them
 * into images/ (bucket/sync.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readStream } from '../image/local-file.js';
import type { LocalFile } from '../image/local-image.js';
import type { SharedReadsMember } from '../registry/shared-reads.js';
import { ActionError } from '../common/errors.js';
import * as log from '../common/log.js';
import { IMAGE_FILE_HEADERS, PART_BYTES, type Bucket } from './store.js';
import { UPLOADS_FOLDER, type BucketUpload } from './sync.js';

const PART_MIB = PART_BYTES / (1024 * 1024);

/** A folder of its own for this run's uploads. */
export const newUploadFolder = (): string => `${UPLOADS_FOLDER}${randomBytes(16).toString('hex')}/`;

/** The chunks, hashed as they pass; the digest is set once the last went through. */
function hashing(chunks: AsyncIterable<Buffer>, done: (sha256: string, size: number) => void): AsyncIterable<Buffer> {
  return (async function* () {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of chunks) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
    done(hash.digest('hex'), size);
  })();
}

/**
 * Uploads each image file to `folder` in the bucket, reading through `shared` (or alone, when it
 * left the shared read); returns what was uploaded, with the sha256 of the bytes sent.
 */
export async function uploadToBucket(
  bucket: Bucket,
  files: readonly LocalFile[],
  options: { folder: string; shared?: SharedReadsMember },
): Promise<BucketUpload[]> {
  const started = Date.now();
  // Every file at once, as the servers' uploads read them: none waits on a file another holds back.
  const outcomes = await Promise.allSettled(
    files.map(async (file, k) => {
      const path = `${options.folder}file-${k}`;
      let sent: { sha256: string; size: number } | undefined;
      const source = options.shared?.read(k) ?? readStream(file);
      await bucket.upload(
        path,
        hashing(source as AsyncIterable<Buffer>, (sha256, size) => (sent = { sha256, size })),
        IMAGE_FILE_HEADERS,
      );
      if (!sent || sent.size !== file.size)
        throw new ActionError(
          `${file.path} changed while it was uploaded to the bucket; make sure nothing writes it during the step, and run it again.`,
          file.input,
        );
      return { path, ...sent };
    }),
  );
  const uploads = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed) {
    // What did arrive is of no use without the rest: not left for the clean-up a day later.
    await bucket.delete(uploads.map((upload) => upload.path)).catch(() => undefined);
    throw failed.reason;
  }
  const bytes = uploads.reduce((sum, upload) => sum + upload.size, 0);
  const seconds = (Date.now() - started) / 1000;
  log.info(
    `Uploaded ${(bytes / 1e6).toFixed(1)} MB to the bucket in ${seconds.toFixed(2)} s ` +
      `(${(bytes / 1e6 / Math.max(seconds, 0.001)).toFixed(1)} MB/s), in parts of ${PART_MIB} MiB with their sha256`,
  );
  return uploads;
}
