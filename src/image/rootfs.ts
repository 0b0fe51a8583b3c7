/**
 * Turning a raw rootfs tarball (distrobuilder's rootfs.tar.xz) into a squashfs on the runner,
 * for servers whose incus-simplestreams cannot take the tarball (before 7.0.1). Owners, modes
 * and device nodes come from the tar headers, so no root is needed; the result is the same for
 * the same tarball, so a republish finds the same fingerprint.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '@actions/io';
import { getExecOutput } from '@actions/exec';
import { ActionError } from '../common/errors.js';
import { versionAtLeast } from '../common/version.js';
import type { Compression } from './local-image.js';

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
    const { stdout } = await getExecOutput(mksquashfs, ['-version'], { silent: true, ignoreReturnCode: true });
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

/** Runs `decompress < tarball | tool > output`, failing with whichever side's stderr. */
function pipe(decompress: string[], convert: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const [decompressor = '', ...decompressArgs] = decompress;
    const [converter = '', ...convertArgs] = convert;
    const source = spawn(decompressor, decompressArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    const sink = spawn(converter, convertArgs, { stdio: ['pipe', 'ignore', 'pipe'], env });
    let errors = '';
    source.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    sink.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    source.stdout.pipe(sink.stdin);
    sink.stdin.on('error', () => undefined); // the converter failed first; its status says why
    let pending = 2;
    let failed = '';
    const done = (name: string) => (code: number | null) => {
      if (code !== 0 && !failed) failed = `${name} exited with status ${code ?? 'none'}`;
      if (--pending === 0) {
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

/**
 * Converts the tarball into `<tempdir>/rootfs.squashfs` and returns its path and size, and how to
 * remove it once published. The squashfs carries `creationDate` as its time, so the same tarball
 * always gives the same bytes.
 */
export async function convertRootfsTarball(
  tarball: string,
  compression: Compression,
  creationDate: number,
): Promise<{ path: string; size: number; remove: () => Promise<void> }> {
  const tool = await findSquashfsTool();
  const dir = await mkdtemp(join(process.env['RUNNER_TEMP'] || tmpdir(), 'lxc-publish-rootfs-'));
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const output = join(dir, 'rootfs.squashfs');
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(creationDate) };
  try {
    await pipe([...DECOMPRESSORS[compression], tarball], squashfsCommand(tool, output), env);
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
