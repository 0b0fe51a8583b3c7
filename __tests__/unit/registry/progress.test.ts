import { describe, expect, it } from '@jest/globals';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ProgressCounter, formatProgress } from '../../../src/registry/progress.js';

describe('formatProgress', () => {
  it('shows percent, sizes and MB/s', () => {
    expect(formatProgress({ label: 'rootfs.squashfs', sent: 128e6, total: 256e6, elapsedSeconds: 2 })).toBe(
      'rootfs.squashfs: 50% (128.0 MB of 256.0 MB), 64.0 MB/s',
    );
    expect(formatProgress({ label: 'm', sent: 8660, total: 8660, elapsedSeconds: 0 })).toBe(
      'm: 100% (8.7 kB of 8.7 kB), 0.0 MB/s',
    );
    expect(formatProgress({ label: 'd', sent: 1.5e9, total: 3e9, elapsedSeconds: 10 })).toBe(
      'd: 50% (1.50 GB of 3.00 GB), 150.0 MB/s',
    );
  });
});

describe('ProgressCounter', () => {
  it('passes every byte through unchanged, counts them, and reports while data flows', async () => {
    const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000, i));
    const reports: string[] = [];
    const counter = new ProgressCounter('file', 20000, (line) => reports.push(line), 0);
    const received: Buffer[] = [];
    await pipeline(
      Readable.from(chunks),
      counter,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          received.push(chunk);
          callback();
        },
      }),
    );
    expect(Buffer.concat(received)).toEqual(Buffer.concat(chunks));
    expect(counter.snapshot().sent).toBe(20000);
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.at(-1)).toMatch(/^file: 100% \(20\.0 kB of 20\.0 kB\)/);
  });

  it('stays quiet within the interval', async () => {
    const reports: string[] = [];
    const counter = new ProgressCounter('file', 10, (line) => reports.push(line), 60_000);
    await pipeline(Readable.from([Buffer.alloc(10)]), counter, new Writable({ write: (_c, _e, cb) => cb() }));
    expect(reports).toEqual([]);
  });
});
