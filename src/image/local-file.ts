/**
 * An input file opened once: inspection, hashing, conversion and the upload all read it through
 * the same descriptor, up to the size it had when it was opened, so what was checked is what is
 * uploaded even if the path is replaced meanwhile. A change of the file itself (appended to,
 * truncated, rewritten) is detected and refused.
 */
import { constants, createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ActionError } from '../common/errors.js';
import type { LocalFile } from './local-image.js';

/** Opens a file without following it into a FIFO's wait (O_NONBLOCK), for reading. */
export async function openFile(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
}

function changedError(file: LocalFile, detail: string): ActionError {
  return new ActionError(
    `${file.input}: the file changed while it was being published ("${file.path}": ${detail}). ` +
      'Make sure nothing writes the image files during the step, and run it again.',
    file.input,
  );
}

/**
 * The bytes `start` to `end` (inclusive; by default to the size the file had when opened) read
 * through the file's descriptor. Fails with "the file changed" when the file ends sooner.
 */
export function readStream(file: LocalFile, range: { start?: number; end?: number } = {}): Readable {
  const start = range.start ?? 0;
  const end = Math.min(range.end ?? file.size - 1, file.size - 1);
  const expected = Math.max(0, end - start + 1);
  if (expected === 0) return Readable.from([]);
  async function* chunks(): AsyncGenerator<Buffer> {
    let read = 0;
    const source = createReadStream('', {
      fd: file.handle,
      start,
      end,
      autoClose: false,
      emitClose: false,
      highWaterMark: 256 * 1024,
    });
    for await (const chunk of source) {
      read += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (read < expected) throw changedError(file, `${file.size} bytes when inspected, it ended after ${start + read}`);
  }
  return Readable.from(chunks(), { objectMode: false });
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
