import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFile } from '../../../src/image/local-file.js';
import type { LocalFile } from '../../../src/image/local-image.js';
import { SharedReads } from '../../../src/registry/shared-reads.js';

const MiB = 1024 * 1024;
let dir: string;
let content: Buffer;
const handles: FileHandle[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'shared-reads-'));
  content = randomBytes(24 * MiB + 12345);
  writeFileSync(join(dir, 'rootfs'), content);
});
afterAll(async () => {
  for (const handle of handles) await handle.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The image file, with a count of the bytes read from it through its descriptor. */
async function countedFile(size = content.length): Promise<{ file: LocalFile; bytesRead: () => number }> {
  const handle = await openFile(join(dir, 'rootfs'));
  handles.push(handle);
  let bytes = 0;
  const counting = {
    read: async (buffer: Buffer, offset: number, length: number, position: number) => {
      const result = await handle.read(buffer, offset, length, position);
      bytes += result.bytesRead;
      return result;
    },
  } as unknown as FileHandle;
  return {
    file: { path: join(dir, 'rootfs'), size, handle: counting, mtimeMs: 0, input: 'rootfs' },
    bytesRead: () => bytes,
  };
}

async function digest(chunks: AsyncIterable<Buffer> | undefined, pause?: () => Promise<void>): Promise<string> {
  if (!chunks) throw new Error('no shared read');
  const hash = createHash('sha256');
  for await (const chunk of chunks) {
    hash.update(chunk);
    await pause?.();
  }
  return hash.digest('hex');
}

const expected = (): string => createHash('sha256').update(content).digest('hex');
const ticks = async (n: number): Promise<void> => {
  for (let k = 0; k < n; k++) await new Promise((resolve) => setImmediate(resolve));
};

describe('SharedReads', () => {
  it('reads a file once for three uploads, each of which gets every byte', async () => {
    const { file, bytesRead } = await countedFile();
    const reads = new SharedReads([file], 3);
    const digests = await Promise.all([0, 1, 2].map((k) => digest(reads.member(k).read(0))));
    expect(digests).toEqual([expected(), expected(), expected()]);
    expect(bytesRead()).toBe(content.length);
  });

  it('starts once every upload has read or skipped the file, and feeds the one that reads', async () => {
    const { file, bytesRead } = await countedFile();
    const reads = new SharedReads([file], 2);
    const reading = digest(reads.member(0).read(0));
    await ticks(20);
    expect(bytesRead()).toBe(0); // the second upload has not said yet
    reads.member(1).skip(0);
    expect(await reading).toBe(expected());
    expect(bytesRead()).toBe(content.length);
  });

  it('goes at the pace of the slowest upload, holding at most a few chunks for it', async () => {
    const { file, bytesRead } = await countedFile();
    const reads = new SharedReads([file], 2);
    let slowHas = 0;
    let furthestAhead = 0;
    const fast = digest(reads.member(0).read(0));
    const slowChunks = reads.member(1).read(0);
    if (!slowChunks) throw new Error('no shared read');
    const hash = createHash('sha256');
    for await (const chunk of slowChunks) {
      hash.update(chunk);
      slowHas += chunk.length;
      await ticks(5);
      furthestAhead = Math.max(furthestAhead, bytesRead() - slowHas);
    }
    expect(hash.digest('hex')).toBe(expected());
    expect(await fast).toBe(expected());
    // Two queued chunks of 1 MiB, one in the reader's hands, and the stream's read-ahead.
    expect(furthestAhead).toBeLessThanOrEqual(5 * MiB);
  });

  it('lets the others go on when an upload stops reading part-way, and that upload then reads alone', async () => {
    const { file } = await countedFile();
    const reads = new SharedReads([file], 2);
    const quitter = reads.member(1);
    const staying = digest(reads.member(0).read(0));
    const chunks = quitter.read(0);
    if (!chunks) throw new Error('no shared read');
    for await (const chunk of chunks) {
      expect(chunk.length).toBeGreaterThan(0);
      break; // a failed upload stops reading
    }
    quitter.leave();
    expect(await staying).toBe(expected());
    expect(quitter.read(0)).toBeUndefined();
  });

  it('fails every reader when the file turns out shorter than inspected, never a short file', async () => {
    const { file } = await countedFile(content.length + 10);
    const reads = new SharedReads([file], 2);
    const results = await Promise.allSettled([0, 1].map((k) => digest(reads.member(k).read(0))));
    for (const result of results) {
      expect(result.status).toBe('rejected');
      if (result.status === 'rejected') expect(String(result.reason)).toContain('the file changed');
    }
  });
});
