/**
 * Turning a raw rootfs tarball (distrobuilder's rootfs.tar.xz) into a squashfs on the runner,
 * for servers whose incus-simplestreams cannot take the tarball (before 7.0.1). Owners, modes
 * and device nodes come from the tar headers, so no root is needed; the result is the same for
 * the same tarball, so a republish finds the same fingerprint.
 *
 * Over 300 lines on purpose: the header pre-check (limits, links outside the archive), the
 * conversion pipe with its time limit and progress, and the server-version decision are one
 * topic, a rootfs tarball's way to the server, and read best together.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { which } from '@actions/io';
import { getExecOutput } from '@actions/exec';
import { ActionError, oneLine } from '../common/errors.js';
import { versionAtLeast } from '../common/version.js';
import type { Compression, DataFile, LocalFile } from './local-image.js';
import { checkUnchanged, openFile, readStream } from './local-file.js';
import { scanTar, TarError } from './tar.js';
import { DECOMPRESSORS, toolEnv } from './tools.js';

/** Limits on what a rootfs tarball may hold (the max-rootfs-entries and max-rootfs-size inputs). */
export interface RootfsLimits {
  maxEntries: number;
  /** Bytes of file content, sparse files counted at their full size. */
  maxBytes: number;
}

const MIB = 1024 * 1024;
const hasDotDot = (name: string): boolean => name.split('/').includes('..');

/**
 * Reads the rootfs tarball's headers (not its content) and refuses it past the limits, or when an
 * entry or a hard link leads outside the root ("..") — before anything converts or uploads it.
 * Returns the entry count, the bytes of content and the bytes of the tar stream.
 */
export async function checkRootfsTarball(
  file: LocalFile,
  compression: Compression,
  limits: RootfsLimits,
): Promise<NonNullable<DataFile['tar']>> {
  let entries = 0;
  let bytes = 0;
  let stream = 0;
  try {
    await scanTar(file, compression, (entry, reader) => {
      entries++;
      stream = reader.position;
      if (entries > limits.maxEntries) {
        throw new ActionError(
          `rootfs: "${file.path}" holds more than ${limits.maxEntries} entries (max-rootfs-entries). Raise ` +
            'max-rootfs-entries if the image really has that many files.',
          'max-rootfs-entries',
        );
      }
      bytes += entry.size;
      if (bytes > limits.maxBytes) {
        throw new ActionError(
          `rootfs: "${file.path}" holds more than ${Math.floor(limits.maxBytes / MIB)} MiB of file content ` +
            `(max-rootfs-size; "${oneLine(entry.name)}" alone declares ${entry.size} bytes). Sparse files count at ` +
            'their full size. Raise max-rootfs-size if the image really is that large.',
          'max-rootfs-size',
        );
      }
      if (hasDotDot(entry.name) || (entry.type === 'hardlink' && hasDotDot(entry.linkname))) {
        throw new ActionError(
          `rootfs: "${file.path}" holds the entry "${oneLine(entry.name)}"` +
            (entry.type === 'hardlink' ? `, a hard link to "${oneLine(entry.linkname)}",` : '') +
            ' which leads outside the root file system (".."). Rebuild the tarball from the root directory.',
          'rootfs',
        );
      }
      return false;
    });
  } catch (error) {
    if (!(error instanceof TarError)) throw error;
    throw new ActionError(
      `rootfs: "${file.path}" cannot be read as a tarball (${error.message}). Give the complete rootfs tarball.`,
      'rootfs',
    );
  }
  return { entries, bytes, stream };
}

/** The first version of squashfs-tools whose mksquashfs reads a tar archive (-tar). */
const MKSQUASHFS_TAR_VERSION = [4, 6];

export interface SquashfsTool {
  name: 'tar2sqfs' | 'mksquashfs';
  path: string;
}

/** tar2sqfs (squashfs-tools-ng), or mksquashfs from squashfs-tools 4.6 or later. */
export async function findSquashfsTool(): Promise<SquashfsTool> {
  const tar2sqfs = await which('tar2sqfs', false);
  if (tar2sqfs) return { name: 'tar2sqfs', path: tar2sqfs };
  const mksquashfs = await which('mksquashfs', false);
  if (mksquashfs) {
    const { stdout } = await getExecOutput(mksquashfs, ['-version'], {
      silent: true,
      ignoreReturnCode: true,
      env: toolEnv() as Record<string, string>,
    });
    const version = /version (\d+(?:\.\d+)*)/.exec(stdout)?.[1] ?? '0';
    if (versionAtLeast(version, MKSQUASHFS_TAR_VERSION)) return { name: 'mksquashfs', path: mksquashfs };
  }
  throw new ActionError(
    'convert-rootfs: turning rootfs.tar.xz into a squashfs needs tar2sqfs (package squashfs-tools-ng) or ' +
      'mksquashfs 4.6 or later (squashfs-tools) on the runner. Install one in an earlier step ' +
      '(sudo apt-get install -y squashfs-tools-ng), or build with distrobuilder build-incus, which writes rootfs.squashfs.',
    'convert-rootfs',
  );
}

/** The command that reads an uncompressed tar on stdin and writes `output`. */
export function squashfsCommand(tool: SquashfsTool, output: string): string[] {
  return tool.name === 'tar2sqfs'
    ? [tool.path, '--quiet', '--force', '--no-skip', '--compressor', 'xz', output]
    : [tool.path, '-', output, '-tar', '-noappend', '-quiet', '-comp', 'xz'];
}

interface PipeOptions {
  /** The bytes of the tar stream, for the progress lines. */
  total: number;
  timeoutSeconds: number;
  log: (line: string) => void;
  /** Milliseconds between progress lines. */
  every?: number;
}

/**
 * Runs `decompress < tarball | tool`, the tarball read through its descriptor, both tools with
 * a minimal environment; logs progress and stops both at the time limit. Fails with whichever
 * side's stderr.
 */
function pipe(
  file: LocalFile,
  decompress: readonly string[] | undefined,
  convert: string[],
  env: NodeJS.ProcessEnv,
  options: PipeOptions,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const [converter = '', ...convertArgs] = convert;
    const children: ReturnType<typeof spawn>[] = [];
    const sink = spawn(converter, convertArgs, { stdio: ['pipe', 'ignore', 'pipe'], env });
    children.push(sink);
    let errors = '';
    const collect = (chunk: Buffer) => {
      if (errors.length < 16384) errors += chunk.toString();
    };
    sink.stderr.on('data', collect);
    sink.stdin.on('error', () => undefined); // the converter failed first; its status says why
    let done = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        done += chunk.length;
        callback(null, chunk);
      },
    });
    const input = readStream(file);
    let failed = '';
    let pending = 1;
    const fail = (message: string) => {
      if (!failed) failed = message;
    };
    // A child's 'close' waits until its output was read to the end. Once the converter is gone,
    // nothing reads what flows towards it any more, so that 'close' would never come: the streams
    // are let go.
    const release = () => {
      input.unpipe();
      input.destroy();
      counter.destroy();
      source?.stdout?.destroy();
    };
    const stop = () => {
      for (const child of children) child.kill('SIGKILL');
      release();
    };
    input.on('error', (error) => {
      fail(error.message);
      stop();
    });
    let source: ReturnType<typeof spawn> | undefined;
    let decompressor = 'the file';
    if (decompress) {
      const [command = '', ...args] = decompress;
      decompressor = command;
      source = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
      children.push(source);
      pending++;
      source.stderr?.on('data', collect);
      source.stdin?.on('error', () => undefined);
      input.pipe(source.stdin!);
      source.stdout!.pipe(counter).pipe(sink.stdin);
    } else {
      input.pipe(counter).pipe(sink.stdin);
    }
    const started = Date.now();
    const progress = setInterval(() => {
      const percent = options.total > 0 ? Math.min(100, Math.floor((done / options.total) * 100)) : 0;
      const seconds = Math.round((Date.now() - started) / 1000);
      options.log(`Converting: ${percent}% of ${Math.ceil(options.total / MIB)} MiB of tar read, ${seconds} s`);
    }, options.every ?? 5000);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutSeconds * 1000);
    const settle = (name: string) => (code: number | null, signal: NodeJS.Signals | null) => {
      if (code !== 0) fail(`${name} exited with status ${code ?? signal ?? 'none'}`);
      if (--pending > 0) return;
      clearInterval(progress);
      clearTimeout(timer);
      if (timedOut) reject(new ConversionTimeout());
      else if (failed) reject(new Error(`${failed}: ${errors.trim().split('\n').slice(-5).join('\n')}`));
      else resolve();
    };
    const error = (e: Error) => {
      fail(e.message);
      stop();
    };
    sink.on('error', error);
    sink.on('exit', (code, signal) => {
      if (code !== 0) {
        // The converter gave up (a full disk, say): what the decompressor still has goes nowhere.
        fail(`${converter} exited with status ${code ?? signal ?? 'none'}`);
        stop();
      } else if (source?.stdout) {
        // It read the archive to its end marker. The decompressor still checks the rest of the
        // file (its integrity check covers the last block), its output thrown away.
        source.stdout.unpipe(counter);
        counter.destroy();
        source.stdout.resume();
      } else {
        release();
      }
    });
    sink.on('close', settle(converter));
    if (source) {
      source.on('error', error);
      source.on('close', settle(decompressor));
    }
  });
}

class ConversionTimeout extends Error {}

export interface ConvertOptions {
  creationDate: number;
  /** convert-rootfs-timeout. */
  timeoutSeconds: number;
  log: (line: string) => void;
  /** Milliseconds between progress lines (5 s by default). */
  progressEvery?: number;
}

/**
 * Converts the tarball (read through its descriptor) into `<tempdir>/rootfs.squashfs` and
 * returns it opened, with how to remove it once published. The squashfs carries `creationDate`
 * as its time, so the same tarball always gives the same bytes.
 */
export async function convertRootfsTarball(
  tarball: DataFile,
  options: ConvertOptions,
): Promise<{ file: DataFile; remove: () => Promise<void> }> {
  const tool = await findSquashfsTool();
  const tempDir = process.env['RUNNER_TEMP'] || tmpdir();
  const dir = await mkdtemp(join(tempDir, 'lxc-publish-rootfs-'));
  const output = join(dir, 'rootfs.squashfs');
  let handle: Awaited<ReturnType<typeof openFile>> | undefined;
  const remove = async (): Promise<void> => {
    await handle?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const env = toolEnv({ SOURCE_DATE_EPOCH: String(options.creationDate) });
  const compression = tarball.compression ?? 'none';
  try {
    await pipe(
      tarball,
      compression === 'none' ? undefined : DECOMPRESSORS[compression],
      squashfsCommand(tool, output),
      env,
      {
        total: tarball.tar?.stream ?? tarball.size,
        timeoutSeconds: options.timeoutSeconds,
        log: options.log,
        ...(options.progressEvery ? { every: options.progressEvery } : {}),
      },
    );
    await checkUnchanged(tarball);
    handle = await openFile(output);
    const info = await handle.stat();
    const file: DataFile = {
      path: output,
      size: info.size,
      handle,
      mtimeMs: info.mtimeMs,
      input: 'rootfs',
      kind: 'squashfs',
    };
    return { file, remove };
  } catch (error) {
    await remove();
    if (error instanceof ActionError) throw error;
    if (error instanceof ConversionTimeout) {
      throw new ActionError(
        `rootfs: converting "${tarball.path}" into a squashfs with ${tool.name} took longer than ` +
          `${options.timeoutSeconds} s (convert-rootfs-timeout) and was stopped. Raise convert-rootfs-timeout for a ` +
          'very large image, or build with distrobuilder build-incus, which writes rootfs.squashfs.',
        'convert-rootfs-timeout',
      );
    }
    throw new ActionError(
      `rootfs: converting "${tarball.path}" into a squashfs with ${tool.name} failed: ${(error as Error).message.replace(/\.$/, '')}. ` +
        `Check that the file is a complete tar archive, and that ${tempDir} (RUNNER_TEMP) has room for the ` +
        `squashfs (${await freeMiB(tempDir)} MiB free now).`,
      'rootfs',
    );
  }
}

async function freeMiB(dir: string): Promise<string> {
  try {
    const stats = await statfs(dir);
    return String(Math.floor((stats.bavail * stats.bsize) / MIB));
  } catch {
    return 'unknown';
  }
}

/** The first incus-simplestreams that takes a raw rootfs tarball (a root.tar.xz item). */
const ROOTFS_TARBALL_SINCE = [7, 0, 1];

/** Whether to turn a rootfs tarball into a squashfs on the runner, and why (for the log). */
export function rootfsDecision(
  mode: 'auto' | 'always' | 'never',
  serverVersion: string | undefined,
): { convert: boolean; reason: string } {
  if (mode === 'always')
    return { convert: true, reason: 'convert-rootfs is always: converting rootfs tarball into a squashfs' };
  const takesTarball = serverVersion !== undefined && versionAtLeast(serverVersion, ROOTFS_TARBALL_SINCE);
  if (takesTarball) {
    return {
      convert: false,
      reason: `The server's incus-simplestreams ${serverVersion} takes a rootfs tarball: uploading it as it is`,
    };
  }
  if (mode === 'never') {
    throw new ActionError(
      `The server's incus-simplestreams ${serverVersion ?? '(unknown version)'} cannot take a rootfs tarball ` +
        `(7.0.1 and later can). Set convert-rootfs: auto to convert it into a squashfs on the runner, or pass rootfs.squashfs.`,
      'convert-rootfs',
    );
  }
  return {
    convert: true,
    reason: `The server's incus-simplestreams ${serverVersion ?? '(unknown version)'} cannot take a rootfs tarball (7.0.1 and later can): converting it into a squashfs on the runner`,
  };
}
