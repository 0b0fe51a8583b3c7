/**
 * An input file opened once: inspection, hashing, conversion and the upload all read it through
 * the same descriptor, up to the size it had when it was opened, so what was checked is what is
 * uploaded even if the path is replaced meanwhile. A change of the file itself (appended to,
 * truncated, rewritten) is detected and refused.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ActionError } from '../common/errors.js';
import type { LocalFile } from './local-image.js';

/** Opens a file without following it into a FIFO's wait (O_NONBLOCK), for reading. */
export async function openFile(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
}

export function changedError(file: LocalFile, detail: string): ActionError {
  return new ActionError(
    `${file.input}: the file changed while it was being published ("${file.path}": ${detail}). ` +
      'Make sure nothing writes the image files during the step, and run it again.',
    file.input,
  );
}

const CHUNK = 256 * 1024;

/**
 * The bytes `start` to `end` (inclusive; by default to the size the file had when opened) read
 * through the file's descriptor, by position: nothing past that size is read, and stopping early
 * (destroying the stream) leaves the descriptor open for the next reader. Fails with "the file
 * changed" when the file ends sooner.
 */
export function readStream(
  file: LocalFile,
  range: { start?: number; end?: number; chunkBytes?: number } = {},
): Readable {
  const start = range.start ?? 0;
  const end = Math.min(range.end ?? file.size - 1, file.size - 1);
  const chunkBytes = range.chunkBytes ?? CHUNK;
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let position = start; position <= end;) {
      const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, end - position + 1));
      const { bytesRead } = await file.handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) {
        throw changedError(file, `${file.size} bytes when inspected, it ended after ${position}`);
      }
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: chunkBytes });
}

/** Reads up to `length` bytes from `position` through the descriptor. */
export async function readAt(file: LocalFile, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(Math.max(0, Math.min(length, file.size - position)));
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await file.handle.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}

/** Fails with "the file changed" when the file's size or modification time differ from when it was opened. */
export async function checkUnchanged(file: LocalFile): Promise<void> {
  const info = await file.handle.stat();
  if (info.size !== file.size) throw changedError(file, `${file.size} bytes when inspected, ${info.size} now`);
  if (info.mtimeMs !== file.mtimeMs) throw changedError(file, 'it was written to after it was inspected');
}

/** Closes the descriptors (each once; errors ignored). */
export async function closeFiles(files: readonly (LocalFile | undefined)[]): Promise<void> {
  for (const file of new Set(files)) await file?.handle.close().catch(() => undefined);
}
