/**
 * Orchestration: inspect locally, connect, upload (resumable, retried), stage the conversion,
 * then publish under the registry lock, verify, report. Each phase is a log group; each side
 * effect lives in its own module.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActionError, describeError, withoutControlCharacters } from './errors.js';
import {
  UploadHashes,
  hashFileInto,
  hashImage,
  imageFiles,
  inspectImage,
  uploadKey,
  type LocalImage,
} from './image.js';
import { createHash } from 'node:crypto';
import { readSettings, type Settings } from './inputs.js';
import {
  commit,
  customConvertCommand,
  holdLock,
  rootfsDecision,
  serverToolVersion,
  housekeepAndRead,
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
  applyRetention,
  conflictingFingerprint,
  findFingerprint,
  planAliasUpdate,
  planPublication,
  productKey,
  serialFor,
  stagedVersion,
  versionFingerprint,
  type ImagesIndex,
  type PublicationPlan,
  type PublicationStatus,
  type StagedVersion,
} from './simplestreams.js';
import { lxdWarnings, withLxdItems } from './lxd.js';
import { incusWarnings, markUnifiedVm } from './kinds.js';
import { convertRootfsTarball } from './rootfs.js';
import { isDeepStrictEqual } from 'node:util';
import { checkPublicRegistry, type PublicCheckResult } from './public.js';
import { RemoteSession } from './ssh.js';
import { writeFailureSummary, writeSummary, type PublishResult } from './summary.js';

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

/**
 * Sends the files that are not already on the server, resuming partial ones, and hashes them as
 * they go: a first upload reads each file once. Reusing or resuming an earlier run's upload
 * reads the part already sent locally, to check it against the server's copy.
 */
async function transferFiles(
  session: RemoteSession,
  dir: string,
  files: UploadFile[],
  timeoutSeconds: number,
  hashes: UploadHashes,
): Promise<void> {
  const states = await uploadState(
    session,
    dir,
    files.map((file) => file.remoteName),
    timeoutSeconds,
  );
  for (const [index, file] of files.entries()) {
    if (hashes.isDone(index)) continue; // sent before the connection dropped
    const remotePath = posix.join(dir, file.remoteName);
    const state = states.get(file.remoteName) ?? { final: -1, partial: -1 };
    if (state.final === file.size) {
      const own = createHash('sha256');
      const fingerprint = hashes.before(index);
      await hashFileInto(file.localPath, [own, fingerprint]);
      if ((await remoteSha256(session, remotePath)) === own.digest('hex')) {
        hashes.finish(index, fingerprint);
        core.info(`${file.remoteName}: already on the server from an earlier run (sha256 matches); not sent again`);
        continue;
      }
    }
    let offset = 0;
    let fingerprint = hashes.before(index);
    if (state.partial > 0 && state.partial <= file.size) {
      const prefix = createHash('sha256');
      const prefixFingerprint = hashes.before(index);
      const [remote] = await Promise.all([
        remoteSha256(session, `${remotePath}.partial`),
        hashFileInto(file.localPath, [prefix, prefixFingerprint], state.partial),
      ]);
      if (remote === prefix.digest('hex')) {
        offset = state.partial;
        fingerprint = prefixFingerprint;
        core.info(`${file.remoteName}: resuming after ${offset} bytes already on the server`);
      }
    }
    // One hash over the bytes as they go: the fingerprint, without a second read of the file.
    await sendFile(session, file, dir, offset, timeoutSeconds, core.info, [fingerprint]);
    hashes.finish(index, fingerprint);
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
  hashes: UploadHashes,
): Promise<HeldLock> {
  for (let attempt = 0; ; attempt++) {
    let lock: HeldLock | undefined;
    try {
      lock = await holdLock(
        connection.session,
        posix.join(dir, '.lock'),
        settings.lockTimeout,
        `Another run has been uploading this same image to ${dir} for more than ` +
          `${settings.lockTimeout} seconds (lock-timeout). Try again when it is done.`,
      );
      await transferFiles(connection.session, dir, files, settings.lockTimeout, hashes);
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

/** What a run changes under the lock. */
type Change =
  /** The fingerprint is already published: aliases at most. */
  | { kind: 'aliases' }
  /** incus-simplestreams add wrote the version into a staging tree. */
  | { kind: 'staged'; dir: string; version: StagedVersion }
  /** The owner's convert-command writes the live tree itself. */
  | { kind: 'custom'; run: () => Promise<void> };

/**
 * What the action adds to every index it writes: retention (keep-versions) and the LXD items
 * (lxd-compat). Returns undefined when `proposed` (or, without one, `base`) needs nothing more
 * and nothing differs from `base`.
 */
function finishIndex(
  settings: Settings,
  base: ImagesIndex,
  proposed: ImagesIndex | undefined,
  fingerprint: string,
): { index?: ImagesIndex; retired: string[] } {
  let next = proposed ?? base;
  const retired: string[] = [];
  if (settings.keepVersions > 0) {
    const retention = applyRetention(next, settings.keepVersions, fingerprint);
    if (retention.dropped.length > 0) {
      core.info(`keep-versions ${settings.keepVersions}: dropping ${retention.dropped.join(', ')}`);
      next = retention.index;
      retired.push(...retention.retired);
    }
  }
  if (settings.lxdCompat) next = withLxdItems(next);
  return isDeepStrictEqual(next, base) ? { retired } : { index: next, retired };
}

/**
 * The locked part: re-read the live index, make the change, commit, read it back to verify, and
 * clean up after earlier runs. Verifying before the lock is released means a later run moving an
 * alias away cannot be mistaken for a failure of this one.
 */
async function publishUnderLock(
  session: RemoteSession,
  settings: Settings,
  paths: RegistryPaths,
  fingerprint: string,
  aliases: string[],
  change: Change,
  /** This run's own server-side directories, removed once the index is live. */
  done: string[] = [],
): Promise<PublishResult> {
  const lock = await holdLock(
    session,
    lockPath(paths),
    settings.lockTimeout,
    `The registry in ${paths.simplestreamsDir} is busy: another run has held its lock for more than ` +
      `${settings.lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
  );
  try {
    let base = await readLiveIndex(session, paths.simplestreamsDir);
    let plan: PublicationPlan;
    if (change.kind === 'staged') {
      try {
        plan = planPublication(base, change.version, fingerprint, aliases, settings.replace);
      } catch (error) {
        if (error instanceof SerialConflictError) {
          throw serialConflictError(error.product, error.serial, error.existingFingerprint, fingerprint);
        }
        throw error;
      }
    } else {
      if (change.kind === 'custom') {
        await change.run();
        base = await readLiveIndex(session, paths.simplestreamsDir);
        if (!findFingerprint(base, fingerprint)) {
          throw new ActionError(
            `convert-command ${settings.convertCommand} succeeded, but images.json does not list fingerprint ` +
              `${fingerprint}. Check that the script adds the image to ${paths.simplestreamsDir}.`,
            'convert-command',
          );
        }
      }
      const index = planAliasUpdate(base, fingerprint, aliases);
      plan = { status: change.kind === 'custom' ? 'published' : 'unchanged', ...(index ? { index } : {}), retired: [] };
    }
    const finished = finishIndex(settings, base, plan.index, fingerprint);
    if (finished.index) {
      await commit(session, {
        paths,
        lock,
        index: finished.index,
        ...(change.kind === 'staged' && plan.status !== 'unchanged' ? { staging: change.dir } : {}),
        retired: [...plan.retired, ...finished.retired],
      });
    }
    core.info(
      plan.status === 'unchanged'
        ? `Already published; ${finished.index ? 'index updated' : 'nothing to change'}`
        : `Index updated (${plan.status})`,
    );
    const live = await housekeepAndRead(session, paths, done);
    return verify(live, fingerprint, aliases, plan.status);
  } finally {
    await lock.release();
  }
}

/**
 * A raw rootfs tarball: upload it as it is when the server's incus-simplestreams takes one
 * (7.0.1 and later), or convert it into a squashfs on the runner (convert-rootfs).
 */
async function prepareRootfsTarball(
  session: RemoteSession,
  settings: Settings,
  image: LocalImage,
): Promise<LocalImage> {
  const data = image.data;
  if (!data || data.kind !== 'rootfs-tarball') return image;
  const version = settings.convertRootfs === 'always' ? undefined : await serverToolVersion(session);
  const decision = rootfsDecision(settings.convertRootfs, version);
  core.info(decision.reason);
  if (!decision.convert) return image;
  const converted = await convertRootfsTarball(data.path, data.compression ?? 'none', image.properties.creationDate);
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
  try {
    const image = await prepareRootfsTarball(connection.session, settings, inspected);
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
        const { fingerprint } = await hashImage(imageFiles(image).map((file) => file.path));
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

/** Checks the live index, read back under the lock, against what this run published. */
function verify(live: ImagesIndex, fingerprint: string, aliases: string[], status: PublicationStatus): PublishResult {
  const published = findFingerprint(live, fingerprint);
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
