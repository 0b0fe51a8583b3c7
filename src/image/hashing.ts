/**
 * Hashing the image files: the fingerprint clients verify, computed while uploading where it
 * can be, and the upload key that names an image's upload directory before that.
 */
import { createHash, type Hash } from 'node:crypto';
import { imageFiles, type LocalFile, type LocalImage } from './local-image.js';
import { readStream } from './local-file.js';

/**
 * The image fingerprint Incus shows and clients verify: sha256 over the metadata tarball followed
 * by the data file, or over a unified tarball alone. One hash, one read of each file.
 */
export async function fingerprintOf(image: LocalImage): Promise<string> {
  const hash = createHash('sha256');
  for (const file of imageFiles(image)) await hashFileInto(file, [hash]);
  return hash.digest('hex');
}

/**
 * Feeds the first `length` bytes of a file (all of it by default: the size it had when it was
 * inspected) to the hashes, read through the descriptor inspection opened.
 */
export async function hashFileInto(file: LocalFile, hashes: Hash[], length?: number): Promise<void> {
  if (length === 0) return;
  for await (const chunk of readStream(file, { start: 0, end: (length ?? file.size) - 1 })) {
    for (const hash of hashes) hash.update(chunk as Buffer);
  }
}

/**
 * The fingerprint and file hashes of an image whose bytes are hashed as they are uploaded, file
 * after file. After each file it keeps a copy of the running fingerprint hash, so that a retry
 * after a dropped connection need not read the files already sent again.
 */
export class UploadHashes {
  private readonly done: Hash[] = [];
  private readonly sums: string[] = [];

  /** The fingerprint hash as it stands before file `index` (a fresh copy). */
  before(index: number): Hash {
    return index === 0 ? createHash('sha256') : (this.done[index - 1] as Hash).copy();
  }

  isDone(index: number): boolean {
    return this.done[index] !== undefined;
  }

  /** Records file `index`, given the fingerprint hash fed with all its bytes, and its own sha256. */
  finish(index: number, fingerprintSoFar: Hash, sha256: string): void {
    this.done[index] = fingerprintSoFar.copy();
    this.sums[index] = sha256;
  }

  /** The sha256 of each file, in order (what the server's copies must hash to). */
  fileSha256s(): string[] {
    return [...this.sums];
  }

  fingerprint(): string {
    const last = this.done.at(-1);
    if (!last) throw new Error('no file has been hashed');
    return last.copy().digest('hex');
  }
}

/**
 * Names the server-side upload directory of an image before its fingerprint is known (it is
 * computed while uploading): the file sizes and the start of the metadata tarball, which holds
 * metadata.yaml with its creation date. Two images sharing a key only share a lock; what a
 * resumed upload keeps is checked byte for byte.
 */
export async function uploadKey(image: LocalImage): Promise<string> {
  const hash = createHash('sha256').update(`lxc-publish upload ${image.metadata.size} ${image.data?.size ?? 0}\n`);
  await hashFileInto(image.metadata, [hash], Math.min(image.metadata.size, 16 * 1024 * 1024));
  return hash.digest('hex');
}
