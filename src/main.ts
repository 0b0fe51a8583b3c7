/**
 * Orchestration: inspect locally, connect, upload (resumable, retried), stage the conversion,
 * then publish under the registry lock, verify, report. Each phase is a log group; each side
 * effect lives in its own module.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActionError, describeError } from './errors.js';
import { hashImage, hashPrefix, imageFiles, inspectImage, type LocalImage } from './image.js';
import { readSettings, type Settings } from './inputs.js';
import {
  commit,
  holdLock,
  housekeeping,
  imageUploadDir,
  lockPath,
  readLiveIndex,
  remoteNames,
  remoteSha256,
  removeDirs,
  sendFile,
  stage,
  stagingDir,
  uploadState,
  type HeldLock,
  type RegistryPaths,
  type UploadFile,
} from './registry.js';
import {
  SerialConflictError,
  conflictingFingerprint,
  findFingerprint,
  planAliasUpdate,
  planPublication,
  productKey,
  serialFor,
  stagedVersion,
  versionFingerprint,
  type PublicationStatus,
} from './simplestreams.js';
import { RemoteSession } from './ssh.js';
import { writeSummary, type PublishResult } from './summary.js';

/** The aliases to put on the image: the requested ones, and the tool's default one if asked for. */
function requestedAliases(settings: Settings, image: LocalImage): string[] {
  const { os, release, variant } = image.properties;
  const aliases = [...settings.aliases];
  if (settings.defaultAlias) aliases.push(`${os}/${release}/${variant}`);
  return [...new Set(aliases)];
}

function serialConflictError(product: string, serial: string, existing: string, fingerprint: string): ActionError {
  return new ActionError(
    `${product} already has version ${serial} with fingerprint ${existing}, and this image (${fingerprint}) is ` +
      'different. Clients would check the download against the wrong hash, so it is refused. Build a new ' +
      'image (a later creation_date gives a new serial), or set replace: true to replace the published version.',
    'replace',
  );
}

/** The SSH connection, replaced when it drops during the upload. */
class Connection {
  constructor(
    public session: RemoteSession,
    private readonly settings: Settings,
  ) {}

  async reconnect(): Promise<void> {
    this.session.dispose();
    this.session = await RemoteSession.connect(this.settings);
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** Sends the files that are not already on the server, resuming partial ones. */
async function transferFiles(
  session: RemoteSession,
  dir: string,
  files: UploadFile[],
  timeoutSeconds: number,
): Promise<void> {
  const names = files.map((file) => file.remoteName);
  const states = await uploadState(session, dir, names, timeoutSeconds);
  for (const file of files) {
    const remotePath = posix.join(dir, file.remoteName);
    const state = states.get(file.remoteName) ?? { final: -1, partial: -1 };
    if (state.final === file.size && (await remoteSha256(session, remotePath)) === file.sha256) {
      core.info(`${file.remoteName}: already on the server from an earlier run (sha256 matches); not sent again`);
      continue;
    }
    let offset = 0;
    if (state.partial > 0 && state.partial <= file.size) {
      const [remote, local] = await Promise.all([
        remoteSha256(session, `${remotePath}.partial`),
        hashPrefix(file.localPath, state.partial),
      ]);
      if (remote === local) {
        offset = state.partial;
        core.info(`${file.remoteName}: resuming after ${offset} bytes already on the server`);
      }
    }
    await sendFile(session, file, dir, offset, timeoutSeconds, core.info);
  }
}

/**
 * Uploads under the image's own lock, retrying when the connection drops. Returns the lock,
 * which stays held until the publication is done (it also marks the staging tree as in use).
 */
async function upload(
  connection: Connection,
  settings: Settings,
  dir: string,
  files: UploadFile[],
  fingerprint: string,
): Promise<HeldLock> {
  for (let attempt = 0; ; attempt++) {
    let lock: HeldLock | undefined;
    try {
      lock = await holdLock(
        connection.session,
        posix.join(dir, '.lock'),
        settings.lockTimeout,
        `Another run has been uploading this same image (${fingerprint}) to ${dir} for more than ` +
          `${settings.lockTimeout} seconds (lock-timeout). Try again when it is done.`,
      );
      await transferFiles(connection.session, dir, files, settings.lockTimeout);
      return lock;
    } catch (error) {
      await lock?.release().catch(() => undefined);
      if (connection.session.isConnected() || attempt >= settings.retries) throw error;
      const delay = Math.min(30, 2 ** attempt);
      core.warning(
        `The connection dropped during the upload (${describeError(error)}). Retrying in ${delay} s ` +
          `(retry ${attempt + 1} of ${settings.retries}); the upload resumes where it stopped.`,
      );
      await sleep(delay * 1000);
      await connection.reconnect();
    }
  }
}

/**
 * The locked part: re-read the live index, decide, commit, read it back to verify, and clean up
 * after earlier runs. Verifying before the lock is released means a later run moving an alias
 * away cannot be mistaken for a failure of this one.
 */
async function publishUnderLock(
  session: RemoteSession,
  settings: Settings,
  paths: RegistryPaths,
  fingerprint: string,
  aliases: string[],
  staging?: { dir: string; version: ReturnType<typeof stagedVersion> },
): Promise<PublishResult> {
  const lock = await holdLock(
    session,
    lockPath(paths),
    settings.lockTimeout,
    `The registry in ${paths.simplestreamsDir} is busy: another run has held its lock for more than ` +
      `${settings.lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
  );
  try {
    const live = await readLiveIndex(session, paths.simplestreamsDir);
    let plan;
    if (staging) {
      try {
        plan = planPublication(live, staging.version, fingerprint, aliases, settings.replace);
      } catch (error) {
        if (error instanceof SerialConflictError) {
          throw serialConflictError(error.product, error.serial, error.existingFingerprint, fingerprint);
        }
        throw error;
      }
    } else {
      const index = planAliasUpdate(live, fingerprint, aliases);
      plan = { status: 'unchanged' as const, ...(index ? { index } : {}), retired: [] };
    }
    if (plan.index) {
      await commit(session, {
        paths,
        lock,
        index: plan.index,
        ...(staging && plan.status !== 'unchanged' ? { staging: staging.dir } : {}),
        retired: plan.retired,
      });
    }
    core.info(
      plan.status === 'unchanged'
        ? `Already published; ${plan.index ? 'aliases updated' : 'aliases already in place, nothing to change'}`
        : `Index updated (${plan.status})`,
    );
    const result = await verify(session, paths, fingerprint, aliases, plan.status);
    await housekeeping(session, paths);
    return result;
  } finally {
    await lock.release();
  }
}

/** Publishes the image the settings name and returns what the registry now serves. */
export async function publish(settings: Settings): Promise<PublishResult> {
  const { image, hashes } = await core.group('Inspect the image', async () => {
    const image = await inspectImage(settings.metadataPath, settings.rootfsPath);
    const { os, release, variant, propertiesArchitecture } = image.properties;
    core.info(`${image.imageType} image ${os} ${release} ${variant} ${propertiesArchitecture}, ${image.size} bytes`);
    const hashes = await hashImage(imageFiles(image).map((file) => file.path));
    core.info(`Fingerprint: ${hashes.fingerprint}`);
    return { image, hashes };
  });
  const fingerprint = hashes.fingerprint;
  const paths: RegistryPaths = { simplestreamsDir: settings.simplestreamsDir, uploadDir: settings.uploadDir };
  const aliases = requestedAliases(settings, image);

  const connection = new Connection(
    await core.group(`Connect to ${settings.host}:${settings.port}`, () => RemoteSession.connect(settings)),
    settings,
  );
  try {
    const live = await readLiveIndex(connection.session, paths.simplestreamsDir);
    if (findFingerprint(live, fingerprint)) {
      return await core.group('Already published: put the aliases in place', () =>
        publishUnderLock(connection.session, settings, paths, fingerprint, aliases),
      );
    }
    const { os, release, variant, propertiesArchitecture, creationDate } = image.properties;
    const product = productKey(os, release, variant, propertiesArchitecture);
    const serial = serialFor(creationDate);
    const existing = conflictingFingerprint(live, product, serial, fingerprint);
    if (existing && !settings.replace) throw serialConflictError(product, serial, existing, fingerprint);
    return await publishNew(connection, settings, paths, image, hashes.files, fingerprint, aliases);
  } finally {
    connection.dispose();
  }
}

async function publishNew(
  connection: Connection,
  settings: Settings,
  paths: RegistryPaths,
  image: LocalImage,
  fileHashes: string[],
  fingerprint: string,
  aliases: string[],
): Promise<PublishResult> {
  const dir = imageUploadDir(paths, fingerprint);
  const names = remoteNames(image);
  const files: UploadFile[] = imageFiles(image).map((file, index) => ({
    localPath: file.path,
    size: file.size,
    sha256: fileHashes[index] as string,
    remoteName: names[index] as string,
  }));
  const imageLock = await core.group('Upload', () => upload(connection, settings, dir, files, fingerprint));
  const staging = stagingDir(paths, fingerprint);
  try {
    const version = await core.group('Convert with incus-simplestreams', async () => {
      const staged = stagedVersion(
        await stage(
          connection.session,
          staging,
          names.map((name) => posix.join(dir, name)),
        ),
      );
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
    const published = await core.group('Publish under the registry lock', () =>
      publishUnderLock(connection.session, settings, paths, fingerprint, aliases, { dir: staging, version }),
    );
    // Done with this image's files. A failed run keeps its upload for the next one to resume.
    await removeDirs(connection.session, [dir, staging]);
    return published;
  } catch (error) {
    if (connection.session.isConnected()) await removeDirs(connection.session, [staging]).catch(() => undefined);
    throw error;
  } finally {
    await imageLock.release().catch(() => undefined);
  }
}

async function verify(
  session: RemoteSession,
  paths: RegistryPaths,
  fingerprint: string,
  aliases: string[],
  status: PublicationStatus,
): Promise<PublishResult> {
  const published = findFingerprint(await readLiveIndex(session, paths.simplestreamsDir), fingerprint);
  if (!published) {
    throw new ActionError(
      `The registry's images.json does not list fingerprint ${fingerprint} after publishing. ` +
        'Something changed the index without taking the lock (see the README on running incus-simplestreams by hand); publish again.',
    );
  }
  const missing = aliases.filter((alias) => !published.aliases.includes(alias));
  if (missing.length > 0) {
    throw new ActionError(
      `Aliases ${missing.join(', ')} are not on ${published.product} after publishing. Something changed the ` +
        'index without taking the lock (see the README on running incus-simplestreams by hand); publish again.',
    );
  }
  core.info(`${published.product} version ${published.serial} is live with fingerprint ${fingerprint}`);
  return { status, fingerprint, ...published };
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
    await writeSummary(result);
  } catch (error) {
    // ActionError messages already name the input and the fix; anything else is unexpected.
    core.setFailed(error instanceof ActionError ? error.message : `Unexpected error: ${describeError(error)}`);
  }
}
