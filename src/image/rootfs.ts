/**
 * Turning a raw rootfs tarball (distrobuilder's rootfs.tar.xz) into a squashfs on the runner,
 * for servers whose incus-simplestreams cannot take the tarball (before 7.0.1). Owners, modes
 * and device nodes come from the tar headers, so no root is needed; the result is the same for
 * the same tarball, so a republish finds the same fingerprint.
 */
import * as core from '@actions/core';
import { spawn } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '@actions/io';
import { getExecOutput } from '@actions/exec';
import { ActionError } from '../common/errors.js';
import { versionAtLeast } from '../common/version.js';
import type { Compression } from './local-image.js';
import { toolEnvironment } from './tool-environment.js';

/** Each reads the tarball on stdin and writes the tar stream on stdout. */
const DECOMPRESSORS: Record<Compression, string[]> = {
  xz: ['xz', '-dc'],
  gzip: ['gzip', '-dc'],
  bzip2: ['bzip2', '-dc'],
  zstd: ['zstd', '-dcq'],
  none: ['cat'],
};

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
      env: toolEnvironment() as Record<string, string>,
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

/** How long a conversion may take. */
const CONVERSION_TIMEOUT_SECONDS = 1800;

/**
 * Runs `decompress < tarball | tool > output` under a time limit, logging progress (the share of
 * the tarball read) every few seconds, and fails with whichever side's stderr.
 */
function pipe(tarball: string, decompress: string[], convert: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const [decompressor = '', ...decompressArgs] = decompress;
    const [converter = '', ...convertArgs] = convert;
    const source = spawn(decompressor, decompressArgs, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const sink = spawn(converter, convertArgs, { stdio: ['pipe', 'ignore', 'pipe'], env });
    const input = createReadStream(tarball);
    let read = 0;
    const total = statSync(tarball).size;
    input.on('data', (chunk) => (read += chunk.length));
    const progress = setInterval(
      () => core.info(`Converting: ${Math.floor((read / Math.max(total, 1)) * 100)}% of the tarball read`),
      5000,
    );
    const timer = setTimeout(() => {
      failed = `the conversion did not finish within ${CONVERSION_TIMEOUT_SECONDS} s and was stopped`;
      source.kill('SIGKILL');
      sink.kill('SIGKILL');
    }, CONVERSION_TIMEOUT_SECONDS * 1000);
    let errors = '';
    source.stderr.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-8192)));
    sink.stderr.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-8192)));
    input.pipe(source.stdin);
    source.stdin.on('error', () => undefined); // the decompressor failed first; its status says why
    source.stdout.pipe(sink.stdin);
    sink.stdin.on('error', () => undefined); // the converter failed first; its status says why
    let pending = 2;
    let failed = '';
    const done = (name: string) => (code: number | null) => {
      if (code !== 0 && !failed) failed = `${name} exited with status ${code ?? 'none'}`;
      if (--pending === 0) {
        clearInterval(progress);
        clearTimeout(timer);
        if (failed) reject(new Error(`${failed}: ${errors.trim().split('\n').slice(-5).join('\n')}`));
        else resolve();
      }
    };
    source.on('error', reject);
    sink.on('error', reject);
    source.on('close', done(decompressor));
    sink.on('close', done(converter));
  });
}

/** Limits on what a rootfs tarball may unpack to (the rootfs-max-files and rootfs-max-size inputs). */
export interface RootfsLimits {
  maxFiles: number;
  /** In bytes, of the files' apparent sizes (a sparse file counts whole: the squashfs holds it so). */
  maxBytes: number;
}

/**
 * Reads the tarball's headers (tar -tv, as a stream) before converting, and refuses it past the
 * limits: a few hundred bytes of xz can hold a 1 TiB sparse file or a million empty ones.
 */
async function checkRootfsListing(tarball: string, limits: RootfsLimits): Promise<void> {
  let files = 0;
  let bytes = 0;
  let problem: string | undefined;
  let pending = '';
  await new Promise<void>((resolve, reject) => {
    const tar = spawn('tar', ['-tvf', tarball], { env: toolEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stopped = false;
    tar.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)));
    tar.stdout.on('data', (chunk: Buffer) => {
      if (stopped) return;
      pending += chunk.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        files++;
        const size = /^\S+\s+\S+\s+(\d+)\s/.exec(line)?.[1];
        if (size) bytes += Number(size);
        if (files > limits.maxFiles) problem = `holds more than ${limits.maxFiles} entries (rootfs-max-files)`;
        else if (bytes > limits.maxBytes) {
          problem = `unpacks to more than ${Math.round(limits.maxBytes / 2 ** 20)} MiB (rootfs-max-size)`;
        }
        if (problem) {
          stopped = true;
          tar.kill('SIGKILL');
          return;
        }
      }
    });
    tar.on('error', reject);
    tar.on('close', (code) => {
      if (stopped || code === 0) resolve();
      else reject(new Error(stderr.trim() || `tar exited with status ${code ?? 'none'}`));
    });
  });
  if (problem) {
    throw new ActionError(
      `rootfs: "${tarball}" ${problem}, past what this step converts. If the image really is that large, raise ` +
        'the input; otherwise check how the tarball was built.',
      problem.includes('rootfs-max-files') ? 'rootfs-max-files' : 'rootfs-max-size',
    );
  }
}

/**
 * Converts the tarball into `<tempdir>/rootfs.squashfs` and returns its path and size, and how to
 * remove it once published. The squashfs carries `creationDate` as its time, so the same tarball
 * always gives the same bytes.
 */
export async function convertRootfsTarball(
  tarball: string,
  compression: Compression,
  creationDate: number,
  limits: RootfsLimits,
): Promise<{ path: string; size: number; remove: () => Promise<void> }> {
  const tool = await findSquashfsTool();
  await checkRootfsListing(tarball, limits).catch((error: unknown) => {
    // A limit passed is the answer; a tarball tar cannot list is left to the conversion, which
    // reports it with its own error.
    if (error instanceof ActionError) throw error;
  });
  const dir = await mkdtemp(join(process.env['RUNNER_TEMP'] || tmpdir(), 'lxc-publish-rootfs-'));
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const output = join(dir, 'rootfs.squashfs');
  // The tools parse a hostile tarball: they get a minimal environment (no inputs, so no key).
  const env = toolEnvironment({ SOURCE_DATE_EPOCH: String(creationDate) });
  try {
    await pipe(tarball, DECOMPRESSORS[compression], squashfsCommand(tool, output), env);
  } catch (error) {
    await remove();
    throw new ActionError(
      `rootfs: converting "${tarball}" into a squashfs with ${tool.name} failed: ${(error as Error).message}. ` +
        'Check that the file is a complete tar archive.',
      'rootfs',
    );
  }
  return { path: output, size: (await stat(output)).size, remove };
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
