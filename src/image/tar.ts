/**
 * Reading tarballs on the runner as a stream of headers, whatever their compression: the
 * decompressor (a child process with a minimal environment) feeds a tar header parser in this
 * process, which reads only what it is asked for (a member's first bytes) and skips the rest, so
 * memory stays flat whatever the archive holds, and a caller can stop at any entry. It reads the
 * formats Go's archive/tar (incus-simplestreams) reads: ustar, GNU (long names, sparse files) and
 * pax, and names entries as Go does.
 *
 * Over 300 lines on purpose: one header parser (ustar, GNU and pax, sparse files, long names)
 * with its caps; its parts only make sense together.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { oneLine } from '../common/errors.js';
import type { Compression, LocalFile } from './local-image.js';
import { readStream } from './local-file.js';
import { DECOMPRESSORS, requireDecompressor, toolEnv } from './tools.js';

/** A problem with the archive itself (not a tar, truncated, a header too large). */
export class TarError extends Error {
  override name = 'TarError';
}

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo' | 'other';

export interface TarEntry {
  /** The name as Go's archive/tar gives it (pax path and GNU long names applied). */
  name: string;
  type: EntryType;
  /** Bytes the entry declares (the real size of a sparse file). */
  size: number;
  linkname: string;
  mode: number;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  S: 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};
/** Types whose size field does not count data in the archive (as in Go's and GNU tar's readers). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** Largest GNU long name or link name, and pax header, read into memory. */
const MAX_LONG_NAME = 64 * 1024;
const MAX_PAX_HEADER = 1024 * 1024;

/** Bytes from an async iterator, read exactly or skipped. */
class ByteReader {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;
  /** Bytes consumed so far. */
  position = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Exactly `length` bytes, or fewer at the end of the stream. */
  async read(length: number): Promise<Buffer> {
    while (this.buffer.length - this.offset < length) {
      const next = await this.source.next();
      if (next.done) break;
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), next.value]);
      this.offset = 0;
    }
    const out = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += out.length;
    this.position += out.length;
    return out;
  }

  /** Skips `length` bytes; false when the stream ended first. */
  async skip(length: number): Promise<boolean> {
    let left = length;
    while (left > 0) {
      const available = this.buffer.length - this.offset;
      if (available === 0) {
        const next = await this.source.next();
        if (next.done) return false;
        this.buffer = next.value;
        this.offset = 0;
        continue;
      }
      const take = Math.min(available, left);
      this.offset += take;
      this.position += take;
      left -= take;
    }
    return true;
  }
}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** A numeric header field: octal text, or GNU base-256 (first byte 0x80). */
function numeric(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    if (field[0] === 0xff) throw new TarError(`a negative ${what} in a tar header`);
    let value = (field[0] ?? 0) & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new TarError(`a ${what} too large to read in a tar header`);
    return value;
  }
  const digits = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw new TarError(`an invalid ${what} field in a tar header ("${digits}")`);
  return parseInt(digits, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** pax records ("<length> <key>=<value>\n"). */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = space === -1 ? NaN : Number(data.toString('latin1', offset, space));
    if (!Number.isInteger(length) || length <= 0 || offset + length > data.length) {
      throw new TarError('an invalid pax extended header');
    }
    const record = data.toString('utf8', space + 1, offset + length - 1);
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return records;
}

const padded = (size: number): number => Math.ceil(size / 512) * 512;

/** Reads a tar stream entry by entry. */
class TarReader {
  private readonly bytes: ByteReader;
  /** Data bytes of the current entry not read yet, and its padding. */
  private unread = 0;
  private padding = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.bytes = new ByteReader(source[Symbol.asyncIterator]());
  }

  /** Bytes of the tar stream read so far. */
  get position(): number {
    return this.bytes.position;
  }

  /** The next entry, or undefined at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    if (!(await this.bytes.skip(this.unread + this.padding))) throw new TarError('the archive is truncated');
    this.unread = 0;
    this.padding = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax = new Map<string, string>();
    for (let extensions = 0; ; extensions++) {
      if (extensions > 16) throw new TarError('too many extended headers for one entry');
      const block = await this.bytes.read(512);
      if (block.length === 0) return undefined; // no end-of-archive blocks: the end all the same
      if (block.length < 512) throw new TarError('the archive is truncated');
      if (block.every((byte) => byte === 0)) return undefined;
      if (!checksumOk(block)) {
        throw new TarError(`not a tar archive, or a damaged one (bad header checksum at byte ${this.position - 512})`);
      }
      const flag = String.fromCharCode(block[156] as number);
      const magic = block.toString('latin1', 257, 263);
      const stored = HEADER_ONLY.has(flag) ? 0 : numeric(block, 124, 12, 'size');
      if (flag === 'L' || flag === 'K' || flag === 'x') {
        const limit = flag === 'x' ? MAX_PAX_HEADER : MAX_LONG_NAME;
        if (stored > limit) throw new TarError(`an extended header of ${stored} bytes (more than ${limit})`);
        const data = await this.bytes.read(stored);
        if (data.length < stored || !(await this.bytes.skip(padded(stored) - stored))) {
          throw new TarError('the archive is truncated');
        }
        if (flag === 'x') pax = new Map([...pax, ...paxRecords(data)]);
        else {
          const value = text(data, 0, data.length);
          if (flag === 'L') longName = value;
          else longLink = value;
        }
        continue;
      }
      if (flag === 'g' || flag === 'V' || flag === 'N' || flag === 'M') {
        // Global pax headers, volume labels and old GNU name tables: skipped, as Go's reader does.
        if (!(await this.bytes.skip(padded(stored)))) throw new TarError('the archive is truncated');
        extensions = 0;
        continue;
      }
      let name = text(block, 0, 100);
      if (magic === 'ustar\0') {
        const prefix = text(block, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      let size = stored;
      if (flag === 'S' && magic === 'ustar ') {
        size = numeric(block, 483, 12, 'real size');
        // Extension blocks of the sparse map, if any, come before the data.
        let extended = block[482] !== 0;
        for (let blocks = 0; extended; blocks++) {
          if (blocks > 100000) throw new TarError('a sparse map too long');
          const extension = await this.bytes.read(512);
          if (extension.length < 512) throw new TarError('the archive is truncated');
          extended = extension[504] !== 0;
        }
      }
      name = pax.get('path') ?? longName ?? name;
      name = pax.get('GNU.sparse.name') ?? name;
      const realSize = pax.get('GNU.sparse.realsize') ?? pax.get('GNU.sparse.size');
      let storedSize = stored;
      if (pax.has('size') && !HEADER_ONLY.has(flag)) storedSize = Number(pax.get('size'));
      if (!Number.isSafeInteger(storedSize) || storedSize < 0) throw new TarError('an invalid size in a pax header');
      size = realSize !== undefined ? Number(realSize) : flag === 'S' ? size : storedSize;
      if (!Number.isSafeInteger(size) || size < 0) throw new TarError('an invalid sparse size in a pax header');
      this.unread = storedSize;
      this.padding = padded(storedSize) - storedSize;
      return {
        name,
        type: TYPES[flag] ?? 'other',
        size: HEADER_ONLY.has(flag) ? 0 : size,
        linkname: pax.get('linkpath') ?? longLink ?? text(block, 157, 100),
        mode: numeric(block, 100, 8, 'mode'),
      };
    }
  }

  /** Up to `length` bytes of the current entry's data (from where the last read stopped). */
  async read(length: number): Promise<Buffer> {
    const wanted = Math.min(length, this.unread);
    const data = await this.bytes.read(wanted);
    if (data.length < wanted) throw new TarError('the archive is truncated');
    this.unread -= data.length;
    return data;
  }
}

/** The decompressed bytes of a tarball, read through its descriptor. */
interface TarStream {
  reader: TarReader;
  /**
   * Ends the reading (the decompressor is stopped if it still runs) and returns the
   * decompressor's own failure (its exit status and message), if it failed by itself.
   */
  close(): Promise<string | undefined>;
}

/** Opens `file` (compressed as `compression`) as a tar stream. */
function openTar(file: LocalFile, compression: Compression): TarStream {
  const input = readStream(file);
  if (compression === 'none') {
    return {
      reader: new TarReader(input),
      close: () => {
        input.destroy();
        return Promise.resolve(undefined);
      },
    };
  }
  const [command, ...args] = DECOMPRESSORS[compression];
  const child = spawn(command, args, { env: toolEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  child.stdin.on('error', () => undefined); // the decompressor stopped reading: its status says why
  const stdout: Readable = child.stdout;
  input.on('error', (error) => stdout.destroy(error));
  input.pipe(child.stdin);
  const exited = new Promise<string | undefined>((resolve) => {
    child.on('error', (error) =>
      resolve(`${command} could not be started (${error.message}); install it on the runner`),
    );
    child.on('close', (code) =>
      resolve(
        code !== null && code !== 0
          ? `${command} failed: ${oneLine(stderr.trim().split('\n').slice(-2).join(' ')) || `status ${code}`}`
          : undefined,
      ),
    );
  });
  return {
    reader: new TarReader(stdout),
    close: async () => {
      // The decompressor first: killed, it never learns that its output went away. Closed first,
      // its output is a socket whose reader left, and a write then fails with ECONNRESET, which
      // it reports as a failure of its own ("gzip: stdout: Connection reset by peer").
      child.kill('SIGKILL');
      input.destroy();
      stdout.destroy();
      return exited;
    },
  };
}

/**
 * Reads the tarball's entries in order, handing each to `visit` (which may read the entry's
 * first bytes from the reader) until it returns true or the archive ends. A failing decompressor
 * is reported with its own message.
 */
export async function scanTar(
  file: LocalFile,
  compression: Compression,
  visit: (entry: TarEntry, reader: TarReader) => Promise<boolean> | boolean,
): Promise<void> {
  await requireDecompressor(file, compression);
  const tar = openTar(file, compression);
  let failure: Error | undefined;
  try {
    for (let entry = await tar.reader.next(); entry; entry = await tar.reader.next()) {
      if (await visit(entry, tar.reader)) break;
    }
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
  }
  const toolFailure = await tar.close();
  if (toolFailure !== undefined && (failure === undefined || failure instanceof TarError)) {
    throw new TarError(toolFailure);
  }
  if (failure !== undefined) throw failure;
}
