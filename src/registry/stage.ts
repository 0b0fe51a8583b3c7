/**
 * The convert step: incus-simplestreams add in an empty staging tree of the image's own, whose
 * result is merged into the live index under the lock (registry/publication.ts); or the owner's
 * convert-command, which writes the live tree itself.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { ActionError } from '../common/errors.js';
import { logUntrusted, untrusted } from '../common/untrusted.js';
import { stagedVersion, type StagedVersion } from '../simplestreams/plan.js';
import { versionFingerprint } from '../simplestreams/images-index.js';
import { markUnifiedVm } from '../simplestreams/unified-vm.js';
import { commandChain, commandLine } from '../ssh/shell.js';
import { removeDirs } from './housekeeping.js';
import { remotePaths, type RemoteImage } from './layout.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';

/** Runs incus-simplestreams add in an empty staging tree of the image's own. */
export function stageCommand(staging: string, remoteFiles: string[]): string {
  return commandChain([
    ['rm', '-rf', '--', staging],
    ['mkdir', '-p', '--', staging],
    ['cd', '--', staging],
    // Aliases are applied by the action when it merges the version into the live index.
    ['env', 'TZ=UTC', 'incus-simplestreams', 'add', '--no-default-alias', '--', ...remoteFiles],
  ]);
}

export interface StageOptions {
  image: RemoteImage;
  /** The staging tree (registry/layout.ts stagingDir). */
  staging: string;
  /** The fingerprint the runner computed; the server's must be the same. */
  fingerprint: string;
  /** A unified tarball holding a VM: the 6.0 tool does not record that (7.0.1 and later do). */
  unifiedVm: boolean;
}

/**
 * Stages the uploaded image and returns the version the tool wrote, after checking that the
 * server computed the runner's fingerprint (a damaged upload is removed).
 */
export async function stageImage(registry: Registry, options: StageOptions): Promise<StagedVersion> {
  const { image, staging, fingerprint } = options;
  // One round trip: the tool's index is printed once the tool has written it.
  const output = await registry.session.run(
    `${stageCommand(staging, remotePaths(image))} >&2 && ${commandLine(['cat', '--', 'streams/v1/images.json'])}`,
    { what: 'incus-simplestreams add (in the staging tree)' },
  );
  const stagedIndex = parseIndexText(output, posix.join(staging, 'streams/v1/images.json'));
  const staged = stagedVersion(options.unifiedVm ? markUnifiedVm(stagedIndex, fingerprint) : stagedIndex);
  const stagedFingerprint = versionFingerprint(staged.version);
  if (stagedFingerprint !== fingerprint) {
    await removeDirs(registry, [image.dir]);
    throw new ActionError(
      `The server computed fingerprint ${untrusted(stagedFingerprint ?? 'none')} for the uploaded files, not ${fingerprint}: ` +
        'the upload was damaged. It was removed; run the step again.',
    );
  }
  return staged;
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

/** Runs the owner's convert-command on the uploaded image (under the registry lock). */
export async function runCustomConvert(
  registry: Registry,
  command: string,
  image: RemoteImage,
  args: Omit<CustomConvertArguments, 'metadata' | 'data'>,
): Promise<void> {
  const [metadata = '', data = ''] = remotePaths(image);
  const output = await registry.session.run(
    customConvertCommand(command, registry.paths.simplestreamsDir, { metadata, data, ...args }),
    { what: `convert-command ${command}` },
  );
  // Between stop-commands markers, so that no line of the script's output can pass for a workflow command.
  logUntrusted(output.toString('utf8').trim(), core.info);
}
