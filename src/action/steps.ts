/**
 * The steps of a publish, in the order action/main.ts calls them. Each is one log group and
 * hands the work to its layer: image/ on the runner, registry/ on the server.
 */
import * as log from '../common/log.js';
import { timedGroup } from '../common/debug.js';
import { ActionError, describeError } from '../common/errors.js';
import { INSTALL_XDELTA3 } from '../common/hints.js';
import { untrusted, untrustedLine } from '../common/untrusted.js';
import { fingerprintOf, uploadKey } from '../image/hashing.js';
import { inspectImage } from '../image/inspect.js';
import { incusWarnings, lxdWarnings } from '../image/kinds.js';
import { checkUnchanged } from '../image/local-file.js';
import { imageFiles, type LocalImage } from '../image/local-image.js';
import { convertRootfsTarball, rootfsDecision } from '../image/rootfs.js';
import {
  DELTA_TIME_LIMIT_SECONDS,
  deltaReport,
  effectiveDeltaBases,
  makeDeltas,
  type DeltaRun,
} from '../registry/deltas.js';
import { remoteImage, stagingDir, type RemoteImage } from '../registry/layout.js';
import {
  logAliasMoves,
  previewPublication,
  publishUnderLock,
  serialConflictError,
  type Change,
  type PublishResult,
} from '../registry/publication.js';
import { readServerState, serverToolVersion } from '../registry/read.js';
import { Registry } from '../registry/registry.js';
import { removeUnderLease, runCustomConvert, stageImage } from '../registry/stage.js';
import { uploadImage, type Upload } from '../registry/upload.js';
import type { HeldLock } from '../registry/lock.js';
import {
  findFingerprint,
  lineIdentity,
  lineKey,
  releasesOf,
  serialFor,
  versionFingerprint,
  type ImagesIndex,
} from '../simplestreams/images-index.js';
import { deltaBases } from '../simplestreams/deltas.js';
import { predictedVersion, type StagedVersion } from '../simplestreams/plan.js';
import { isOpenRefusal } from '../ssh/session.js';
import { isValidAlias } from './input-values.js';
import type { Settings } from './inputs.js';

/** Step 1: what the files are and what metadata.yaml says, before any network. */
export async function inspect(settings: Settings): Promise<LocalImage> {
  const image = await timedGroup('Inspect the image', async () => {
    const inspected = await inspectImage(settings.metadataPath, settings.rootfsPath, settings.rootfsLimits);
    const { os, release, variant, propertiesArchitecture } = inspected.properties;
    // metadata.yaml is the image builder's: its values are logged escaped.
    const fields = [os, release, variant, propertiesArchitecture].map(untrusted).join(' ');
    log.info(`${inspected.imageType} image ${fields}, ${inspected.size} bytes`);
    return inspected;
  });
  const unified = !image.data;
  const warnings = incusWarnings(image.imageType, unified);
  if (settings.lxdCompat) warnings.push(...lxdWarnings(image.imageType, unified));
  for (const warning of warnings) log.warning(warning);
  return image;
}

/**
 * The aliases to put on the image: the requested ones (checked with the inputs), and the tool's
 * default one if asked for, which comes from metadata.yaml and is checked the same way here: the
 * index keeps a product's aliases as one comma-separated string.
 */
export function requestedAliases(settings: Settings, image: LocalImage): string[] {
  const { os, release, variant } = image.properties;
  const aliases = [...settings.aliases];
  if (settings.defaultAlias) {
    const derived = `${os}/${release}/${variant}`;
    if (!isValidAlias(derived)) {
      throw new ActionError(
        `default-alias: the alias ${untrusted(derived)} made of metadata.yaml's os, release and variant ` +
          `holds a comma, a blank or a control character, or is longer than 255 characters (it has ${derived.length}), ` +
          'which the index cannot store. Fix or shorten those fields in the image definition, or set default-alias: false.',
        'default-alias',
      );
    }
    aliases.push(derived);
  }
  return [...new Set(aliases)];
}

/** Step 2: the SSH connection, with the host key checked. */
export function connect(settings: Settings): Promise<Registry> {
  return timedGroup(`Connect to ${settings.host}:${settings.port}`, () => Registry.open(settings));
}

/** Why this publish makes no delta, or undefined when it makes them (a split container, converted here). */
function noDeltaReason(settings: Settings, image: LocalImage): string | undefined {
  if (effectiveDeltaBases(settings) <= 0) {
    if (settings.deltaBases <= 0) return undefined;
    return settings.releaseIsVersion
      ? 'with release-is-version, keep-versions keeps one build of each release, so none is left to be a base'
      : 'keep-versions 1 keeps no earlier release';
  }
  if (settings.convertCommand) return 'convert-command makes the index';
  if (image.imageType !== 'container' || image.data?.kind !== 'squashfs')
    return 'deltas are made for split containers (a squashfs) only';
  return undefined;
}

/**
 * Step 2: what the server must offer, checked before anything is uploaded; the live index, and
 * whether deltas can be made (xdelta3 on the server: a warning without it, or an error with
 * require-deltas).
 */
export async function checkServer(
  registry: Registry,
  settings: Settings,
  image: LocalImage,
): Promise<{ live: ImagesIndex; deltas: boolean }> {
  const noDelta = noDeltaReason(settings, image);
  if (noDelta && settings.deltaBases > 0) log.info(`No deltas for this image: ${noDelta}`);
  const deltas = settings.deltaBases > 0 && noDelta === undefined;
  const state = await readServerState(registry, {
    tool: settings.convertCommand || 'incus-simplestreams',
    deltas,
    dryRun: settings.dryRun,
  });
  if (deltas && !state.xdelta3) {
    if (settings.requireDeltas) {
      throw new ActionError(
        `require-deltas: xdelta3 is not installed on the server (or not on the SSH user's PATH), so no delta can be made. ${INSTALL_XDELTA3} Or set require-deltas: false to publish without deltas. Nothing was uploaded.`,
        'require-deltas',
      );
    }
    log.warning(
      `xdelta3 is not installed on the server (or not on the SSH user's PATH): publishing without deltas, so clients download the whole image on update. ${INSTALL_XDELTA3}`,
    );
  }
  return { live: state.index, deltas: deltas && state.xdelta3 };
}

/**
 * A raw rootfs tarball: uploaded as it is when the server's incus-simplestreams takes one (7.0.1
 * and later), or converted into a squashfs on the runner (convert-rootfs). `onCleanup` receives
 * what removes the converted file once the run is over.
 */
export async function prepareRootfsTarball(
  registry: Registry,
  settings: Settings,
  image: LocalImage,
  onCleanup: (cleanup: () => Promise<void>) => void,
): Promise<LocalImage> {
  const data = image.data;
  if (!data || data.kind !== 'rootfs-tarball') return image;
  const version = settings.convertRootfs === 'always' ? undefined : await serverToolVersion(registry);
  const decision = rootfsDecision(settings.convertRootfs, version);
  log.info(untrustedLine(decision.reason)); // it quotes the server's version output
  if (!decision.convert) return image;
  const converted = await convertRootfsTarball(data, {
    creationDate: image.properties.creationDate,
    timeoutSeconds: settings.convertRootfsTimeout,
    log: log.info,
  });
  onCleanup(converted.remove);
  log.info(`Converted ${data.path} (${data.size} bytes) into a squashfs of ${converted.file.size} bytes`);
  return { ...image, data: converted.file, size: image.metadata.size + converted.file.size };
}

export type Existing =
  /** Not published yet; `fingerprint` when the version's serial exists and the files were hashed. */
  { published: false; fingerprint?: string } | { published: true; fingerprint: string };

/**
 * Step 3: whether the image is already published. A fingerprint can only be published under its
 * own line and serial (they come from its metadata): only when that release exists is it worth
 * a hash pass before uploading; otherwise the fingerprint is computed while the files upload. A
 * different image under that serial is refused here, before any upload, unless replace is set.
 */
export async function findExisting(
  settings: Settings,
  image: LocalImage,
  live: ImagesIndex,
  options: { fingerprint?: () => Promise<string> } = {},
): Promise<Existing> {
  const { os, release, variant, propertiesArchitecture, creationDate } = image.properties;
  const line = lineKey(os, release, variant, propertiesArchitecture);
  const serial = serialFor(creationDate);
  const identity = lineIdentity(line, { os, release, variant, arch: propertiesArchitecture });
  const published = releasesOf(live, identity).find((candidate) => candidate.serial === serial);
  if (!published) return { published: false };
  const fingerprint = await timedGroup('Fingerprint', async () => {
    const computed = await (options.fingerprint ?? (() => fingerprintOf(image)))();
    log.info(`Fingerprint: ${computed}; ${untrusted(line)} already has a release with serial ${serial}`);
    return computed;
  });
  if (findFingerprint(live, fingerprint)) return { published: true, fingerprint };
  if (!settings.replace) {
    const existing = versionFingerprint(published.version) ?? 'unknown';
    throw serialConflictError(published.product, serial, existing, fingerprint);
  }
  return { published: false, fingerprint };
}

/** Step 3, when published: only the aliases are put in place, under the registry lock. */
export function putAliases(registry: Registry, settings: Settings, fingerprint: string, aliases: string[]) {
  return timedGroup('Already published: put the aliases in place', () =>
    publishUnderLock(registry, { fingerprint, aliases, options: settings }, { kind: 'aliases' }),
  );
}

/** Step 4: the files into the image's own upload directory, resumed and retried; the fingerprint. */
export async function upload(
  registry: Registry,
  settings: Settings,
  image: LocalImage,
  knownFingerprint: string | undefined,
): Promise<{ remote: RemoteImage; upload: Upload }> {
  const remote = remoteImage(registry.paths, await uploadKey(image), image);
  // What was sent is what was inspected, up to its size: a file that changed since is refused,
  // and when the upload failed, a change is what the message says first.
  const unchanged = async (): Promise<void> => {
    for (const file of imageFiles(image)) await checkUnchanged(file);
  };
  let uploaded: Upload;
  try {
    uploaded = await timedGroup('Upload', () => uploadImage(registry, remote, settings));
  } catch (error) {
    await unchanged();
    throw error;
  }
  log.info(`Fingerprint: ${uploaded.fingerprint}`);
  try {
    await unchanged();
  } catch (error) {
    await uploaded.lock.release().catch(() => undefined);
    throw error;
  }
  if (knownFingerprint && knownFingerprint !== uploaded.fingerprint) {
    await uploaded.lock.release().catch(() => undefined);
    throw new ActionError(
      `The image files changed while the step ran (fingerprint ${knownFingerprint}, then ${uploaded.fingerprint}). ` +
        'Make sure nothing writes them during the publish, and run it again.',
      'metadata',
    );
  }
  return { remote, upload: uploaded };
}

/** What step 5 works on: the image, where it was uploaded, and what the upload left. */
export interface ConvertInput {
  image: LocalImage;
  remote: RemoteImage;
  /** The upload: the fingerprint, each file's sha256, and the image lock staging runs under. */
  upload: Upload;
  aliases: string[];
  /** The live index to choose delta bases from (as read before the upload); none: no deltas. */
  deltaBasesFrom?: ImagesIndex;
}

/**
 * Step 5: the change to publish: the version incus-simplestreams add wrote into a staging tree,
 * or the owner's convert-command, which runs under the registry lock in step 6.
 */
export async function convert(registry: Registry, settings: Settings, input: ConvertInput): Promise<Change> {
  const { image, remote, upload, aliases, deltaBasesFrom } = input;
  const { fingerprint } = upload;
  if (settings.convertCommand) {
    const serial = serialFor(image.properties.creationDate);
    let started = false;
    return {
      kind: 'custom',
      run: async (registryLock) => {
        try {
          await runCustomConvert(registry, registryLock, settings.convertCommand, remote, {
            fingerprint,
            serial,
            aliases,
          });
          started = true;
        } catch (error) {
          // Unless its channel was refused (sshd MaxSessions), the command may have run.
          if (!isOpenRefusal(error)) started = true;
          throw error;
        }
      },
      started: () => started,
    };
  }
  const staging = stagingDir(registry.paths, remote.key);
  return timedGroup('Convert with incus-simplestreams', async () => {
    const version = await stageImage(registry, {
      image: remote,
      lock: upload.lock,
      staging,
      fingerprint,
      fileSha256s: upload.fileSha256s,
      unifiedVm: !image.data && image.imageType === 'virtual-machine',
    });
    log.info(
      `Staged ${untrusted(version.product)} version ${untrusted(version.serial)}; its files hold the bytes uploaded`,
    );
    if (!deltaBasesFrom) return { kind: 'staged', dir: staging, version } as const;
    const deltas = await deltasFor(registry, settings, { staging, version, live: deltaBasesFrom, lock: upload.lock });
    return { kind: 'staged', dir: staging, version, ...(deltas ? { deltas } : {}) } as const;
  });
}

/** Why a delta was not made, by the DELTA script's reason word. */
const SKIP_REASONS: Record<string, string> = {
  'too-large': 'it was larger than delta-max-share of the squashfs (raise delta-max-share to publish such deltas)',
  'timed-out': `making or checking it took longer than ${DELTA_TIME_LIMIT_SECONDS} s (lower delta-bases, or check the server's load)`,
  'encode-failed': "xdelta3 failed to make it (check the server's free space in simplestreams-dir)",
  'decode-mismatch':
    "the check before publishing failed: decoding it against its base did not give the new squashfs (check the server's xdelta3: xdelta3 -V)",
  'base-missing':
    "the base's squashfs is no longer on the server (withdraw that release with the remove sub-action, or publish it again)",
  'base-changed':
    "the base's squashfs on the server is not the file the index names, its sha256 differs (withdraw that release with the remove sub-action, or publish it again with replace: true)",
  'xdelta3-missing': `xdelta3 is not on the PATH. ${INSTALL_XDELTA3}`,
  'script-failed': 'the delta script failed (its message follows); the publish goes on without it',
  'no-answer':
    'the delta script printed no answer for it (something in the SSH session may have hidden it); run the step again with step debug on (ACTIONS_STEP_DEBUG) to see the script and its output',
};

/** Step 5, for a split container: deltas from earlier releases, made and checked on the server. */
async function deltasFor(
  registry: Registry,
  settings: Settings,
  staged: { staging: string; version: StagedVersion; live: ImagesIndex; lock: HeldLock },
): Promise<DeltaRun | undefined> {
  // The index read before the upload, not read again (a round trip): a release published
  // meanwhile is not a base this time, and a base gone meanwhile is left out under the lock.
  const run = await makeDeltas(registry, staged, settings);
  if (!run) return undefined;
  for (const delta of run.made) {
    const { share } = deltaReport(delta, run.squashfsSize);
    log.info(
      `Delta from release ${delta.base}: ${delta.size} bytes (${(share * 100).toFixed(2)}% of the squashfs), checked`,
    );
  }
  for (const { base, reason, detail } of run.skipped) {
    const text =
      `No delta from release ${base}: ${SKIP_REASONS[reason] ?? untrusted(reason)}.` +
      (detail ? ` ${untrustedLine(detail)}` : '');
    // A delta larger than allowed is expected after a large change; anything else is worth a look.
    if (reason === 'too-large') log.info(text);
    else log.warning(`${text} Clients updating from it download the whole image.`);
  }
  if (run.made.length === 0 && run.skipped.length === 0) log.info('No earlier release to make a delta from');
  return run;
}

/** Steps 6 and 7: the change made live under the registry lock, and read back to verify it. */
export function publishLocked(
  registry: Registry,
  settings: Settings,
  remote: RemoteImage,
  publication: { fingerprint: string; aliases: string[] },
  change: Change,
): Promise<PublishResult> {
  // This run's upload and staging directories go once the image is live.
  const done = [remote.dir, stagingDir(registry.paths, remote.key)];
  return timedGroup('Publish under the registry lock', async () => {
    const locked = (on: Registry) => publishUnderLock(on, { ...publication, options: settings }, change, done);
    if (!registry.sessionsLimited) {
      try {
        return await locked(registry);
      } catch (error) {
        // The image lock, the registry lock and one command need three channels at once. A server
        // that refuses the third (sshd MaxSessions 2) refuses the first command under the lock,
        // before it runs: nothing has changed, and the part can run again over a connection of
        // its own. Not once an owner's convert-command has run: it must not run twice.
        if (!isOpenRefusal(error)) throw error;
        if (change.kind === 'custom' && change.started()) throw tooFewSessions(error);
        registry.sessionsLimited = true;
      }
    }
    // The image lock holds one of the few channels the server allows per connection.
    log.info('The server allows few channels per connection: this part runs over a connection of its own');
    return registry.withOwnConnection(locked);
  });
}

function tooFewSessions(error: unknown): ActionError {
  return new ActionError(
    `The server refused an SSH channel after convert-command had run (${untrustedLine(describeError(error))}): its ` +
      'sshd allows too few sessions per connection (MaxSessions), and the command must not run a second time over a ' +
      "connection of its own. Set MaxSessions to 3 or more in the server's sshd_config (the default is 10), reload " +
      'sshd and run the step again.',
    'convert-command',
  );
}

/**
 * After a failure: the staging tree goes, under the image lock's lease (never after another run
 * took the lock over); the upload stays, for the next run to resume.
 */
export async function discardStaging(registry: Registry, remote: RemoteImage, lock: HeldLock): Promise<void> {
  if (registry.isConnected() && !lock.lost())
    await removeUnderLease(registry, lock, [stagingDir(registry.paths, remote.key)]).catch(() => undefined);
}

/**
 * dry-run: what a publish would do, planned on the live index read in step 2, with the version
 * predicted from the image's metadata (the server stages nothing). Nothing on the server changes:
 * no upload, no lock, no staging.
 */
export async function preview(
  settings: Settings,
  image: LocalImage,
  work: { live: ImagesIndex; deltas: boolean; existing: Existing; aliases: string[] },
): Promise<PublishResult> {
  const { live, deltas, existing, aliases } = work;
  return timedGroup('Dry run: what a publish would do', async () => {
    if (settings.convertCommand) {
      log.notice(
        "dry-run with convert-command: the plan below is what the built-in convert step would do; the owner's " +
          'command is not run in a dry run, and may move aliases or keep releases otherwise.',
      );
    }
    const fingerprint = existing.fingerprint ?? (await fingerprintOf(image));
    const { os, release, variant, propertiesArchitecture, creationDate } = image.properties;
    const staged = predictedVersion({
      os,
      release,
      variant,
      architecture: propertiesArchitecture,
      serial: serialFor(creationDate),
      fingerprint,
      imageType: image.imageType,
      data: image.data?.kind ?? 'unified',
      size: image.size,
    });
    const publication = { fingerprint, aliases, options: settings };
    const change = existing.published
      ? ({ kind: 'aliases' } as const)
      : ({ kind: 'staged', dir: '', version: staged } as const);
    const planned = previewPublication(publication, change, live);
    const identity = lineIdentity(staged.product, staged.productFields);
    const bases =
      deltas && !existing.published ? deltaBases(live, identity, staged.serial, effectiveDeltaBases(settings)) : [];
    const target = findFingerprint(planned.index, fingerprint);
    const product = target?.product ?? staged.product;
    const serial = target?.serial ?? staged.serial;
    log.info(`Fingerprint: ${fingerprint}`);
    log.info(`Would report status ${planned.status}: ${untrusted(product)} version ${untrusted(serial)}`);
    logAliasMoves(planned.moves, 'Would move');
    for (const base of bases) log.info(`Would try a delta from release ${base.serial}`);
    log.info('dry-run: nothing was uploaded and nothing on the server was changed');
    return {
      status: 'dry-run',
      fingerprint,
      product,
      serial,
      aliases: target?.aliases ?? aliases,
      imageType: image.imageType,
      size: image.size,
      files: [],
      deltas: [],
      aliasMoves: planned.moves,
      changedPaths: [],
      preview: { status: planned.status, dropped: planned.dropped, deltaBases: bases.map((base) => base.serial) },
    };
  });
}
