/**
 * The steps this action runs on the registry server. Every command is built from argument lists
 * by shell.ts; file contents travel over the SSH channel's stdin, never through a command line.
 */
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { ActionError, describeError } from './errors.js';
import { commandChain, commandLine, quoteArg } from './shell.js';
import { parseImagesIndex, type ImagesIndex } from './simplestreams.js';
import { ProgressCounter, formatProgress } from './progress.js';
import type { RemoteSession } from './ssh.js';
import type { Compression, LocalImage } from './image.js';

/** Where one run's files sit on the server, and under which names. */
export interface UploadPlan {
  dir: string;
  files: { localPath: string; size: number; remoteName: string }[];
}

const TARBALL_EXTENSIONS: Record<Compression, string> = {
  xz: '.tar.xz',
  gzip: '.tar.gz',
  bzip2: '.tar.bz2',
  zstd: '.tar.zst',
  none: '.tar',
};

/**
 * A directory of this run's own under upload-dir: the fingerprint names the image, the run id and
 * a random part keep parallel runs (and re-runs) apart. Remote names are fixed, so nothing from
 * the runner's file names reaches the server.
 */
export function planUpload(image: LocalImage, fingerprint: string, uploadDir: string, runId: string): UploadPlan {
  const dir = posix.join(uploadDir, `${fingerprint.slice(0, 16)}-${runId}-${randomBytes(4).toString('hex')}`);
  const metadataName = (image.data ? 'metadata' : 'image') + TARBALL_EXTENSIONS[image.metadata.compression];
  const files = [{ localPath: image.metadata.path, size: image.metadata.size, remoteName: metadataName }];
  if (image.data) {
    const dataName = image.data.kind === 'qcow2' ? 'disk.qcow2' : 'rootfs.squashfs';
    files.push({ localPath: image.data.path, size: image.data.size, remoteName: dataName });
  }
  return { dir, files };
}

/** A run id for upload directory names: the workflow run and attempt, or "local". */
export function runIdentifier(env: NodeJS.ProcessEnv = process.env): string {
  const id = env['GITHUB_RUN_ID'];
  const attempt = env['GITHUB_RUN_ATTEMPT'] ?? '1';
  return id && /^\d+$/.test(id) && /^\d+$/.test(attempt) ? `${id}.${attempt}` : 'local';
}

export async function createUploadDir(session: RemoteSession, uploadDir: string, dir: string): Promise<void> {
  // mkdir without -p for the run's own directory: it fails rather than share a directory.
  await session.run(
    commandChain([
      ['mkdir', '-p', '--', uploadDir],
      ['mkdir', '-m', '0755', '--', dir],
    ]),
    `Creating the upload directory ${dir} (upload-dir)`,
  );
}

/**
 * Streams one file to the server under a temporary name and renames it once it is complete, so a
 * partial file never carries the final name.
 */
export async function uploadFile(
  session: RemoteSession,
  localPath: string,
  size: number,
  remotePath: string,
  log: (line: string) => void,
): Promise<void> {
  const partial = `${remotePath}.partial`;
  const counter = new ProgressCounter(posix.basename(remotePath), size, log);
  const source = createReadStream(localPath, { highWaterMark: 256 * 1024 });
  const command = `${commandLine(['cat'])} > ${quoteArg(partial)} && ${commandLine(['mv', '--', partial, remotePath])}`;
  try {
    await session.run(command, `Uploading ${localPath} to ${remotePath}`, source.pipe(counter));
  } catch (error) {
    if (error instanceof ActionError) throw error;
    throw new ActionError(`Uploading ${localPath} to ${remotePath} failed: ${describeError(error)}`);
  }
  log(formatProgress(counter.snapshot()));
}

export interface ConvertOptions {
  simplestreamsDir: string;
  aliases: string[];
  defaultAlias: boolean;
}

/** The `incus-simplestreams add` invocation, as an argument list (pure, unit tested). */
export function convertCommand(options: ConvertOptions, remoteFiles: string[]): string {
  const add = ['env', 'TZ=UTC', 'incus-simplestreams', 'add'];
  if (!options.defaultAlias) add.push('--no-default-alias');
  for (const alias of options.aliases) add.push('--alias', alias);
  add.push('--', ...remoteFiles);
  // No mkdir: a missing registry directory is a wrong simplestreams-dir, not something to create.
  return commandChain([['cd', '--', options.simplestreamsDir], add]);
}

export async function convert(session: RemoteSession, options: ConvertOptions, remoteFiles: string[]): Promise<void> {
  await session.run(
    convertCommand(options, remoteFiles),
    `incus-simplestreams add in ${options.simplestreamsDir} (simplestreams-dir)`,
  );
}

/** Reads streams/v1/images.json back from the server. */
export async function readImagesIndex(session: RemoteSession, simplestreamsDir: string): Promise<ImagesIndex> {
  const path = posix.join(simplestreamsDir, 'streams/v1/images.json');
  const text = await session.run(commandLine(['cat', '--', path]), `Reading ${path}`);
  try {
    return parseImagesIndex(text.toString('utf8'));
  } catch (error) {
    throw new ActionError(`${path} on the server cannot be read as a simplestreams index: ${describeError(error)}`);
  }
}

export async function removeDir(session: RemoteSession, dir: string): Promise<void> {
  await session.run(commandLine(['rm', '-rf', '--', dir]), `Removing ${dir}`);
}
