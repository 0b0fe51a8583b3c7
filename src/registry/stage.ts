/**
 * The convert step: incus-simplestreams add in an empty staging tree of the image's own, under
 * the image lock's lease (server/stage.sh), whose result is merged into the live index under the
 * registry lock (registry/publication.ts); or the owner's convert-command, which writes the live
 * tree itself, under the registry lock's lease.
 */
import * as log from '../common/log.js';
import { posix } from 'node:path';
import { ActionError } from '../common/errors.js';
import { logUntrusted, untrusted } from '../common/untrusted.js';
import { stagedVersion, type StagedVersion } from '../simplestreams/plan.js';
import { versionFingerprint } from '../simplestreams/images-index.js';
import { markUnifiedVm } from '../simplestreams/unified-vm.js';
import { commandChain } from '../ssh/shell.js';
import { remotePaths, type RemoteImage } from './layout.js';
import { fenceArgs, fencedOutput, type HeldLock } from './lock.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';
import { FENCED, STAGE } from './scripts.js';
import { IMAGE_LOCK_NAME } from './upload.js';

export interface StageOptions {
  image: RemoteImage;
  /** The image's upload lock, whose lease the staging runs under. */
  lock: HeldLock;
  /** The staging tree (registry/layout.ts stagingDir). */
  staging: string;
  /** The fingerprint the runner computed; the server's must be the same. */
  fingerprint: string;
  /** The sha256 of each uploaded file as the runner read it: the staged copies must hash to these. */
  fileSha256s: string[];
  /** A unified tarball holding a VM: the 6.0 tool does not record that (7.0.1 and later do). */
  unifiedVm: boolean;
}

/** What server/stage.sh printed: the sha256 of each staged file, by name, and the tree's index. */
export function parseStageOutput(output: Buffer): { sums: Map<string, string>; index: Buffer } {
  const sums = new Map<string, string>();
  let index: Buffer | undefined;
  // Lines of another form (a login shell's noise) are ignored.
  for (const line of output.toString('utf8').split('\n')) {
    const sum = /^sum ([0-9a-f]{64}) ([A-Za-z0-9._+-]+)$/.exec(line);
    if (sum) sums.set(sum[2] as string, sum[1] as string);
    else if (line.startsWith('index ')) index = Buffer.from(line.slice('index '.length), 'base64');
  }
  return { sums, index: index ?? Buffer.alloc(0) };
}

/**
 * The staged files that are not the uploaded bytes: an item whose copy in the staging tree does
 * not hash to what the tool recorded, or to any file the runner uploaded; or an uploaded file no
 * item holds. Empty when every staged byte is what the runner read.
 */
export function stagedMismatches(staged: StagedVersion, sums: Map<string, string>, uploaded: string[]): string[] {
  const items = Object.values(staged.version.items);
  const wrong = items
    .filter((item) => {
      const got = sums.get(posix.basename(item.path));
      return got === undefined || got !== item.sha256 || !uploaded.includes(got);
    })
    .map((item) => item.path);
  const missing = uploaded.filter((sha256) => !items.some((item) => item.sha256 === sha256));
  return [...wrong, ...missing.map((sha256) => `an uploaded file (sha256 ${sha256})`)];
}

/**
 * Stages the uploaded image and returns the version the tool wrote, after checking that the
 * server computed the runner's fingerprint and that every staged copy holds the bytes the runner
 * read (otherwise the upload is removed).
 */
export async function stageImage(registry: Registry, options: StageOptions): Promise<StagedVersion> {
  const { image, lock, staging, fingerprint } = options;
  const what = 'incus-simplestreams add (in the staging tree)';
  const result = await registry.execScript(STAGE, [...fenceArgs(lock.fence), staging, ...remotePaths(image)]);
  const output = parseStageOutput(fencedOutput(result, lock, what, IMAGE_LOCK_NAME));
  const stagedIndex = parseIndexText(output.index, posix.join(staging, 'streams/v1/images.json'));
  const staged = stagedVersion(options.unifiedVm ? markUnifiedVm(stagedIndex, fingerprint) : stagedIndex);
  const stagedFingerprint = versionFingerprint(staged.version);
  if (stagedFingerprint !== fingerprint) {
    await removeUnderLease(registry, lock, [image.dir, staging]);
    throw new ActionError(
      `The server computed fingerprint ${untrusted(stagedFingerprint ?? 'none')} for the uploaded files, not ${fingerprint}: ` +
        'the upload was damaged. It was removed; run the step again.',
    );
  }
  const wrong = stagedMismatches(staged, output.sums, options.fileSha256s);
  if (wrong.length > 0) {
    await removeUnderLease(registry, lock, [image.dir, staging]);
    throw new ActionError(
      `The staged copies on the server do not hold the bytes this runner uploaded (${wrong.map(untrusted).join(', ')}): ` +
        'the upload directory changed while it was staged (another process writing in upload-dir?). The upload was ' +
        'removed; run the step again, and check that nothing else writes in upload-dir.',
      'upload-dir',
    );
  }
  return staged;
}

/** Removes directories of the image's (its upload, its staging tree) under its lock's lease. */
export async function removeUnderLease(registry: Registry, lock: HeldLock, dirs: string[]): Promise<void> {
  const what = `Removing ${dirs.join(', ')}`;
  const result = await registry.execScript(FENCED, [...fenceArgs(lock.fence), 'rm', '-rf', '--', ...dirs]);
  fencedOutput(result, lock, what, IMAGE_LOCK_NAME);
}

export interface CustomConvertArguments {
  metadata: string;
  /** '' for a unified tarball. */
  data: string;
  fingerprint: string;
  serial: string;
  aliases: string[];
}

/** The owner's convert-command, run in simplestreams-dir with documented, quoted arguments. */
export function customConvertCommand(command: string, simplestreamsDir: string, args: CustomConvertArguments): string {
  return commandChain([
    ['cd', '--', simplestreamsDir],
    ['env', 'TZ=UTC', command, args.metadata, args.data, args.fingerprint, args.serial, ...args.aliases],
  ]);
}

/** Runs the owner's convert-command on the uploaded image, under the registry lock's lease. */
export async function runCustomConvert(
  registry: Registry,
  registryLock: HeldLock,
  command: string,
  image: RemoteImage,
  args: Omit<CustomConvertArguments, 'metadata' | 'data'>,
): Promise<void> {
  const [metadata = '', data = ''] = remotePaths(image);
  const chain = customConvertCommand(command, registry.paths.simplestreamsDir, { metadata, data, ...args });
  const what = `convert-command ${command}`;
  const result = await registry.execScript(FENCED, [...fenceArgs(registryLock.fence), 'sh', '-c', chain]);
  const output = fencedOutput(result, registryLock, what, 'registry lock');
  // Between stop-commands markers, so that no line of the script's output can pass for a workflow command.
  logUntrusted(output.toString('utf8').trim(), log.info);
}
