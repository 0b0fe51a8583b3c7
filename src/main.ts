/**
 * Orchestration: inspect locally, connect, upload (upload.ts), stage the conversion, publish
 * under the registry lock (publication.ts), report. Each phase is a log group; each side effect
 * lives in its own module.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { ActionError, describeError, withoutControlCharacters } from './errors.js';
import { fingerprintOf, imageFiles, inspectImage, uploadKey, UploadHashes, type LocalImage } from './image.js';
import { readSettings, type Settings } from './inputs.js';
import { incusWarnings, markUnifiedVm } from './kinds.js';
import { lxdWarnings } from './lxd.js';
import { publishUnderLock, serialConflictError, type Change } from './publication.js';
import { checkPublicRegistry, type PublicCheckResult } from './public.js';
import {
  customConvertCommand,
  imageUploadDir,
  readLiveIndex,
  remoteNames,
  removeDirs,
  rootfsDecision,
  serverToolVersion,
  stage,
  stagingDir,
  type RegistryPaths,
  type UploadFile,
} from './registry.js';
import { convertRootfsTarball } from './rootfs.js';
import {
  conflictingFingerprint,
  findFingerprint,
  productKey,
  serialFor,
  stagedVersion,
  versionFingerprint,
} from './simplestreams.js';
import { RemoteSession } from './ssh.js';
import { writeFailureSummary, writeSummary, type PublishResult } from './summary.js';
import { Connection, upload } from './upload.js';

const indent = (text: string): string =>
  text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');

/** The aliases to put on the image: the requested ones, and the tool's default one if asked for. */
function requestedAliases(settings: Settings, image: LocalImage): string[] {
  const { os, release, variant } = image.properties;
  const aliases = [...settings.aliases];
  if (settings.defaultAlias) aliases.push(`${os}/${release}/${variant}`);
  return [...new Set(aliases)];
}

/**
 * A raw rootfs tarball: upload it as it is when the server's incus-simplestreams takes one
 * (7.0.1 and later), or convert it into a squashfs on the runner (convert-rootfs).
 */
async function prepareRootfsTarball(
  session: RemoteSession,
  settings: Settings,
  image: LocalImage,
  onCleanup: (cleanup: () => Promise<void>) => void,
): Promise<LocalImage> {
  const data = image.data;
  if (!data || data.kind !== 'rootfs-tarball') return image;
  const version = settings.convertRootfs === 'always' ? undefined : await serverToolVersion(session);
  const decision = rootfsDecision(settings.convertRootfs, version);
  core.info(decision.reason);
  if (!decision.convert) return image;
  const converted = await convertRootfsTarball(data.path, data.compression ?? 'none', image.properties.creationDate);
  onCleanup(converted.remove);
  core.info(`Converted ${data.path} (${data.size} bytes) into a squashfs of ${converted.size} bytes`);
  return {
    ...image,
    data: { path: converted.path, size: converted.size, kind: 'squashfs' },
    size: image.metadata.size + converted.size,
  };
}

/** Publishes the image the settings name and returns what the registry now serves. */
export async function publish(settings: Settings): Promise<PublishResult> {
  const inspected = await core.group('Inspect the image', async () => {
    const image = await inspectImage(settings.metadataPath, settings.rootfsPath);
    const { os, release, variant, propertiesArchitecture } = image.properties;
    core.info(`${image.imageType} image ${os} ${release} ${variant} ${propertiesArchitecture}, ${image.size} bytes`);
    return image;
  });
  const warnings = incusWarnings(inspected.imageType, !inspected.data);
  if (settings.lxdCompat) warnings.push(...lxdWarnings(inspected.imageType, !inspected.data));
  for (const warning of warnings) core.warning(warning);
  const paths: RegistryPaths = { simplestreamsDir: settings.simplestreamsDir, uploadDir: settings.uploadDir };
  const aliases = requestedAliases(settings, inspected);

  const connection = new Connection(
    await core.group(`Connect to ${settings.host}:${settings.port}`, () => RemoteSession.connect(settings)),
    settings,
  );
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const image = await prepareRootfsTarball(connection.session, settings, inspected, (cleanup) =>
      cleanups.push(cleanup),
    );
    const live = await readLiveIndex(connection.session, paths.simplestreamsDir, {
      uploadDir: paths.uploadDir,
      tool: settings.convertCommand || 'incus-simplestreams',
    });
    const { os, release, variant, propertiesArchitecture, creationDate } = image.properties;
    const product = productKey(os, release, variant, propertiesArchitecture);
    const serial = serialFor(creationDate);
    // A fingerprint can only be published under its own product and serial (they come from its
    // metadata). Only when that version exists is it worth a hash pass before uploading anything;
    // otherwise the fingerprint is computed while the files are uploaded.
    let knownFingerprint: string | undefined;
    if (live.products[product]?.versions?.[serial]) {
      knownFingerprint = await core.group('Fingerprint', async () => {
        const fingerprint = await fingerprintOf(imageFiles(image).map((file) => file.path));
        core.info(`Fingerprint: ${fingerprint}; ${product} already has version ${serial}`);
        return fingerprint;
      });
      if (findFingerprint(live, knownFingerprint)) {
        const fingerprint = knownFingerprint;
        return await core.group('Already published: put the aliases in place', () =>
          publishUnderLock(connection.session, settings, paths, fingerprint, aliases, { kind: 'aliases' }),
        );
      }
      const existing = conflictingFingerprint(live, product, serial, knownFingerprint);
      if (existing && !settings.replace) throw serialConflictError(product, serial, existing, knownFingerprint);
    }
    return await publishNew(connection, settings, paths, image, aliases, serial, knownFingerprint);
  } finally {
    connection.dispose();
    // A squashfs converted from a rootfs tarball is not needed once the run is over.
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

async function publishNew(
  connection: Connection,
  settings: Settings,
  paths: RegistryPaths,
  image: LocalImage,
  aliases: string[],
  serial: string,
  knownFingerprint: string | undefined,
): Promise<PublishResult> {
  const key = await uploadKey(image);
  const dir = imageUploadDir(paths, key);
  const names = remoteNames(image);
  const remoteFiles = names.map((name) => posix.join(dir, name));
  const files: UploadFile[] = imageFiles(image).map((file, index) => ({
    localPath: file.path,
    size: file.size,
    remoteName: names[index] as string,
  }));
  const hashes = new UploadHashes();
  const imageLock = await core.group('Upload', () => upload(connection, settings, dir, files, hashes));
  const fingerprint = hashes.fingerprint();
  core.info(`Fingerprint: ${fingerprint}`);
  if (knownFingerprint && knownFingerprint !== fingerprint) {
    await imageLock.release().catch(() => undefined);
    throw new ActionError(
      `The image files changed while the step ran (fingerprint ${knownFingerprint}, then ${fingerprint}). ` +
        'Make sure nothing writes them during the publish, and run it again.',
      'metadata',
    );
  }
  const staging = stagingDir(paths, key);
  try {
    let change: Change;
    if (settings.convertCommand) {
      const command = customConvertCommand(settings.convertCommand, paths.simplestreamsDir, {
        metadata: remoteFiles[0] as string,
        data: image.data ? (remoteFiles[1] as string) : '',
        fingerprint,
        serial,
        aliases,
      });
      change = {
        kind: 'custom',
        run: () =>
          connection.session
            .run(command, `convert-command ${settings.convertCommand}`)
            // Indented, so that no line of the script's output can pass for a workflow command.
            .then((output) => core.info(indent(withoutControlCharacters(output.toString('utf8').trim())))),
      };
    } else {
      const version = await core.group('Convert with incus-simplestreams', async () => {
        const stagedIndex = await stage(connection.session, staging, remoteFiles);
        // The 6.0 tool does not record that a unified tarball holds a VM; 7.0.1 and later do.
        const unifiedVm = !image.data && image.imageType === 'virtual-machine';
        const staged = stagedVersion(unifiedVm ? markUnifiedVm(stagedIndex, fingerprint) : stagedIndex);
        const stagedFingerprint = versionFingerprint(staged.version);
        if (stagedFingerprint !== fingerprint) {
          await removeDirs(connection.session, [dir]);
          throw new ActionError(
            `The server computed fingerprint ${stagedFingerprint ?? 'none'} for the uploaded files, not ${fingerprint}: ` +
              'the upload was damaged. It was removed; run the step again.',
          );
        }
        core.info(`Staged ${staged.product} version ${staged.serial}`);
        return staged;
      });
      change = { kind: 'staged', dir: staging, version };
    }
    // Done with this image's files once published. A failed run keeps its upload for the next
    // one to resume.
    return await core.group('Publish under the registry lock', () =>
      publishUnderLock(connection.session, settings, paths, fingerprint, aliases, change, [dir, staging]),
    );
  } catch (error) {
    if (connection.session.isConnected()) await removeDirs(connection.session, [staging]).catch(() => undefined);
    throw error;
  } finally {
    await imageLock.release().catch(() => undefined);
  }
}

function setOutputs(result: PublishResult): void {
  core.setOutput('fingerprint', result.fingerprint);
  core.setOutput('product', result.product);
  core.setOutput('serial', result.serial);
  core.setOutput('aliases', result.aliases.join(','));
  core.setOutput('image-type', result.imageType);
  core.setOutput('size', String(result.size));
  core.setOutput('status', result.status);
}

/** The action's entry point: never throws; a failure fails the step with a message. */
export async function run(): Promise<void> {
  try {
    const settings = readSettings();
    const result = await publish(settings);
    setOutputs(result);
    let publicCheck: PublicCheckResult | undefined;
    try {
      if (settings.publicUrl) {
        publicCheck = await core.group(`Check ${settings.publicUrl}`, () =>
          checkPublicRegistry({
            url: settings.publicUrl,
            fingerprint: result.fingerprint,
            timeoutSeconds: settings.publicCheckTimeout,
            log: core.info,
          }),
        );
      }
    } finally {
      // The summary says "served" only when the public check passed. Outside a runner (a local
      // run) there is no summary file: the log has everything.
      if (process.env['GITHUB_STEP_SUMMARY'])
        await writeSummary(result, {
          ...(publicCheck ? { publicUrl: settings.publicUrl, publicCheck } : {}),
          ...(settings.remoteName ? { remoteName: settings.remoteName } : {}),
          lxd: settings.lxdCompat,
        });
    }
  } catch (error) {
    // ActionError messages already name the input and the fix; anything else is unexpected.
    const message = error instanceof ActionError ? error.message : `Unexpected error: ${describeError(error)}`;
    const input = error instanceof ActionError ? error.input : undefined;
    core.error(message, { title: input ? `lxc-publish: check the ${input} input` : 'lxc-publish failed' });
    process.exitCode = core.ExitCode.Failure;
    if (process.env['GITHUB_STEP_SUMMARY']) await writeFailureSummary(message).catch(() => undefined);
  }
}
