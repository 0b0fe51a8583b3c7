/**
 * Publishing one release to several registry servers (the host input and the mirrors), so that
 * either all serve it or none does. In two phases: every server is connected, checked, uploaded
 * to (each file read once on the runner, its bytes streamed to every server at once) and staged;
 * then every server's registry lock is taken and the change planned on its live index; only then
 * does each commit. A server that fails before the commits stops the run on all of them (their
 * staging goes, their uploads stay to resume). A commit that fails after others succeeded is
 * reported by server; running the step again finishes the job (the servers that have the release
 * report unchanged).
 */
import { timedGroup } from '../common/debug.js';
import { ActionError, describeError, FailedAfterPublishing, oneLine } from '../common/errors.js';
import * as log from '../common/log.js';
import { fingerprintOf } from '../image/hashing.js';
import { closeFiles } from '../image/local-file.js';
import { imageFiles, type LocalImage } from '../image/local-image.js';
import { rootfsDecision } from '../image/rootfs.js';
import { stagingDir } from '../registry/layout.js';
import {
  preparePublication,
  type Change,
  type PreparedPublication,
  type PublishResult,
} from '../registry/publication.js';
import { serverToolVersion } from '../registry/read.js';
import { Registry } from '../registry/registry.js';
import { SharedReads } from '../registry/shared-reads.js';
import type { Upload } from '../registry/upload.js';
import { BarrierBroken, turnsInSequence, type Turn } from '../common/together.js';
import type { ImagesIndex } from '../simplestreams/images-index.js';
import { describeSshCounters } from '../ssh/session.js';
import type { Settings } from './inputs.js';
import { MIRROR_KEYS, registryKey, type ServerSettings } from './mirrors.js';
import {
  checkServer,
  connect,
  convert,
  discardStaging,
  findExisting,
  inspect,
  prepareRootfsTarball,
  preview,
  requestedAliases,
  upload,
  type Existing,
} from './steps.js';
import type { RemoteImage } from '../registry/layout.js';
import { Bucket, type BucketSettings } from '../bucket/store.js';
import { newUploadFolder, uploadToBucket } from '../bucket/upload.js';
import { prefillBucket, syncBucket, type BucketUpload } from '../bucket/sync.js';

/** One server of the fleet and the settings a step runs with there. */
export interface Server<S = Settings> {
  name: string;
  settings: S;
  /** The host input's server (the others are mirrors). */
  primary: boolean;
}

/** What a step's settings must hold to make a fleet: the host input's server and the mirrors. */
interface FleetSettings {
  serverName: string;
  mirrors: ServerSettings[];
  jump?: unknown;
}

/** Where a fleet member is, as messages and the servers output say. */
interface MemberPlace {
  host: string;
  port: number;
  simplestreamsDir: string;
}

/**
 * A bucket of the fleet: it serves the index the host input's server committed, with the image
 * files uploaded from the runner (bucket/).
 */
export interface BucketRun<R extends ServerResult = PublishResult> {
  server: Server<MemberPlace>;
  bucket: Bucket;
  /** What this run uploaded to it (before the commits). */
  uploads?: BucketUpload[];
  result?: R;
  error?: unknown;
}

/** The buckets of a step, each with a client of its own. */
export function bucketRunsOf<R extends ServerResult>(buckets: readonly BucketSettings[]): BucketRun<R>[] {
  return buckets.map((settings) => {
    const url = new URL(settings.endpoint);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const place = { host: url.hostname, port, simplestreamsDir: [settings.bucket, settings.prefix].join('/') };
    return { server: { name: settings.name, settings: place, primary: false }, bucket: new Bucket(settings) };
  });
}

/** The servers output of a step without mirrors: its one server and what was done there. */
export function oneServer<R extends ServerResult>(
  settings: { serverName: string; host: string; port: number },
  result: R,
): ServerOutcome<R>[] {
  return [{ name: settings.serverName, host: settings.host, port: settings.port, status: result.status, result }];
}

/** A server's part of a step, as the outcomes and messages see it. */
interface RunOnServer<R extends ServerResult> {
  server: Server<MemberPlace>;
  result?: R;
  error?: unknown;
}

/** What the outputs and the summary show of a server's result (a publish's, or a sub-action's). */
export interface ServerResult {
  status: string;
  fingerprint: string;
  product: string;
  serial: string;
  changedPaths: string[];
  preview?: { status: string };
}

/** How the run ended on one server. */
export interface ServerOutcome<R extends ServerResult = PublishResult> {
  name: string;
  host: string;
  port: number;
  /** What the run did there; `failed`: the step failed there; `not-published`: it stopped before any commit. */
  status: R['status'] | 'failed' | 'not-published';
  result?: R;
  /** Why it failed there (an error's message). */
  error?: string;
  /** For a bucket: bucket/prefix. */
  bucket?: string;
}

/** What a publish to a fleet did: the release as served, and each server's outcome. */
export interface FleetPublish {
  result: PublishResult;
  servers: ServerOutcome[];
}

/** The servers of a step: the host input's first, then the mirrors in their order. */
export function fleetOf<S extends FleetSettings>(settings: S): Server<S>[] {
  // A mirror connects directly: the jump-* inputs are the host input's bastion.
  const { jump: _bastion, mirrors, ...shared } = settings;
  const mirrorSettings = (mirror: ServerSettings): S =>
    ({ ...shared, ...mirror, mirror: mirror.name, mirrors: [] }) as unknown as S;
  return [
    { name: settings.serverName, settings, primary: true },
    ...mirrors.map((mirror) => ({ name: mirror.name, settings: mirrorSettings(mirror), primary: false })),
  ];
}

/** A server's part of the run, filled in as the phases go. */
interface ServerRun {
  server: Server;
  registry?: Registry;
  /** The connection the registry lock and the commit use. */
  lockedRegistry?: Registry;
  live?: ImagesIndex;
  deltas?: boolean;
  existing?: Existing;
  remote?: RemoteImage;
  upload?: Upload;
  change?: Change;
  prepared?: PreparedPublication;
  result?: PublishResult;
  error?: unknown;
}

/** A server as messages name it: its name, and where it is when the name does not say. */
export function where(run: { server: { name: string; settings: { host: string; port: number } } }): string {
  const { host, port } = run.server.settings;
  const { name } = run.server;
  return name === host || name === `${host}:${port}` ? name : `${name} (${host}:${port})`;
}

/** What a mirror's own entry sets: an error about one of these is about the mirrors input. */
const PER_SERVER_INPUTS = new Set<string>([...MIRROR_KEYS, 'ssh-key', 'ssh-key-passphrase']);

/**
 * The message and input of a server's failure. On a mirror, an error about a setting of its own
 * (its host, key, pins or directories) names the mirrors input; one about the step's other inputs
 * (fingerprint, aliases, replace …) names that input.
 */
export function failureOf(run: RunOnServer<ServerResult> | BucketRun<ServerResult>): {
  message: string;
  input?: string;
} {
  const { error } = run;
  const message = oneLine(describeError(error));
  if (!(error instanceof ActionError) || error.input === undefined) return { message };
  // A bucket's errors name the buckets input, or the host input's settings it reads through.
  if ('bucket' in run) return { message, input: error.input };
  const own = PER_SERVER_INPUTS.has(error.input) || error.input.includes(' of mirror ');
  return { message, input: run.server.primary || !own ? error.input : 'mirrors' };
}

/** Runs `work` on every server at once, each labelled in the log; fails naming each server that failed. */
async function onEvery<M extends RunOnServer<ServerResult>, T>(
  runs: M[],
  phase: string,
  work: (run: M, k: number) => Promise<T>,
): Promise<T[]> {
  const outcomes = await Promise.allSettled(runs.map((run, k) => log.onServer(run.server.name, () => work(run, k))));
  const failed: M[] = [];
  outcomes.forEach((outcome, k) => {
    const run = runs[k] as M;
    if (outcome.status === 'rejected') {
      run.error = outcome.reason;
      failed.push(run);
    }
  });
  if (failed.length > 0) throw notPublished(phase, failed);
  return outcomes.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
}

/** Runs `work` on one server after another, in the fleet's lock order; stops at the first that fails. */
async function onEachInTurn(runs: ServerRun[], phase: string, work: (run: ServerRun) => Promise<void>): Promise<void> {
  for (const run of inLockOrder(runs)) {
    try {
      await log.onServer(run.server.name, () => work(run));
    } catch (error) {
      run.error = error;
      throw notPublished(phase, [run]);
    }
  }
}

function notPublished(phase: string, failed: RunOnServer<ServerResult>[]): ActionError {
  const reasons = failed.map((run) => `${where(run)}: ${failureOf(run).message.replace(/\.$/, '')}`);
  const list = failed.every((run) => 'bucket' in run) ? 'buckets' : 'mirrors';
  return new ActionError(
    `Nothing was published on any server: ${phase} failed on ${reasons.join('; ')}. Every server's index is as it ` +
      `was (what was uploaded stays, to resume); fix that server, or take it out of ${list}, and run the step again.`,
    failed.map((run) => failureOf(run).input).find((input) => input !== undefined),
  );
}

/**
 * The servers in the order every run takes their locks in (by host, port and registry, whatever
 * the order of the inputs): two runs whose fleets share servers then never each hold a lock the
 * other waits for.
 */
function inLockOrder<T extends RunOnServer<ServerResult>>(runs: T[]): T[] {
  const key = (run: T): string => registryKey(run.server.settings);
  return [...runs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Turns taken one after another, in the fleet's lock order: a server's may start once the one before ended. */
export function lockTurns<T extends RunOnServer<ServerResult>>(runs: T[]): Map<T, Turn> {
  const ordered = inLockOrder(runs);
  const turns = turnsInSequence(ordered.length);
  return new Map(ordered.map((run, k) => [run, turns[k] as Turn]));
}

/**
 * A raw rootfs tarball: one image for every server, so it is converted on the runner unless
 * every server's incus-simplestreams takes it as it is.
 */
async function fleetImage(
  runs: ServerRun[],
  settings: Settings,
  image: LocalImage,
  onCleanup: (cleanup: () => Promise<void>) => void,
): Promise<LocalImage> {
  if (image.data?.kind !== 'rootfs-tarball') return image;
  let deciding = runs[0] as ServerRun;
  if (settings.convertRootfs !== 'always') {
    // auto converts when any server cannot take the tarball; never refuses then, naming that server.
    const versions = await Promise.all(runs.map((run) => serverToolVersion(run.registry as Registry)));
    for (const [k, run] of runs.entries()) {
      let convert: boolean;
      try {
        convert = rootfsDecision(settings.convertRootfs, versions[k]).convert;
      } catch (error) {
        if (!(error instanceof ActionError)) throw error;
        throw new ActionError(`${where(run)}: ${error.message}`, error.input);
      }
      if (convert) {
        deciding = run;
        break;
      }
    }
  }
  return log.onServer(deciding.server.name, () =>
    prepareRootfsTarball(deciding.registry as Registry, deciding.server.settings, image, onCleanup),
  );
}

const STATUS_ORDER = ['published', 'replaced', 'aliases-updated', 'dry-run', 'unchanged'] as const;

/** The status that says most about the fleet: a new release anywhere, else a replacement, else moved aliases. */
function fleetStatus<S extends PublishResult['status']>(statuses: S[]): S {
  return (STATUS_ORDER.find((status) => statuses.includes(status as S)) ?? 'unchanged') as S;
}

/** `compute` run at most once; every caller gets its one promise. */
function once<T>(compute: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= compute());
}

/**
 * Each server's outcome, for the outputs and the summary; `committing`: the step had let the
 * servers commit (a server without a result then failed, even if only because another did).
 */
export function outcomes<R extends ServerResult>(
  runs: (RunOnServer<R> | BucketRun<R>)[],
  committing: boolean,
): ServerOutcome<R>[] {
  return runs.map((run) => {
    const { host, port, simplestreamsDir } = run.server.settings;
    const base = { name: run.server.name, host, port, ...('bucket' in run ? { bucket: simplestreamsDir } : {}) };
    if (run.result) return { ...base, status: run.result.status, result: run.result };
    const failedHere = run.error !== undefined && !(run.error instanceof BarrierBroken);
    if (failedHere) return { ...base, status: 'failed', error: failureOf(run).message };
    return { ...base, status: committing ? 'failed' : 'not-published' };
  });
}

/** The run stopped before any server committed: every server is as it was. */
export class FleetNotPublished extends ActionError {
  constructor(
    message: string,
    input: string | undefined,
    readonly servers: ServerOutcome[],
  ) {
    super(message, input);
  }
}

/** A commit failed on some servers after others committed: the step fails, saying where the release is. */
export class FleetPartlyPublished extends FailedAfterPublishing {
  constructor(
    message: string,
    input: string | undefined,
    readonly fleet: FleetPublish,
  ) {
    super(message, input, 'Image published on some servers only');
  }
}

/** Publishes the image the settings name to every server of the fleet, or to none. */
export async function publishToFleet(settings: Settings): Promise<FleetPublish> {
  const inspected = await inspect(settings); // 1. inspect locally, once
  const cleanups: (() => Promise<void>)[] = [() => closeFiles(imageFiles(inspected))];
  const runs: ServerRun[] = fleetOf(settings).map((server) => ({ server }));
  const buckets = bucketRunsOf<PublishResult>(settings.buckets);
  try {
    const aliases = requestedAliases(settings, inspected);
    await timedGroup(`Connect to ${describeFleet(runs, buckets)}`, async () => {
      const members: (ServerRun | BucketRun)[] = [...runs, ...buckets];
      await onEvery(members, 'connecting', async (member) => {
        if ('bucket' in member) await member.bucket.check();
        else member.registry = await connect(member.server.settings);
      });
    });
    const image = await fleetImage(runs, settings, inspected, (cleanup) => cleanups.push(cleanup));
    // A server that has this serial already needs the image's fingerprint: computed once for all.
    const fingerprint = once(() => fingerprintOf(image));
    await timedGroup('Check every server', () =>
      onEvery(runs, 'checking the server', async (run) => {
        const { live, deltas } = await checkServer(run.registry as Registry, run.server.settings, image);
        run.live = live;
        run.deltas = deltas;
        run.existing = await findExisting(run.server.settings, image, live, { fingerprint });
      }),
    );
    if (settings.dryRun) return await previewFleet(runs, buckets, image, aliases);
    const toPublish = runs.filter((run) => !run.existing?.published);
    // The buckets take the files from the runner along with the servers that need them; else
    // each copies what it lacks from the host input's server.
    if (toPublish.length > 0) await uploadAndStage(toPublish, buckets, image, aliases);
    await prefillBuckets((runs[0] as ServerRun).registry as Registry, buckets);
    return await commitEverywhere(runs, buckets, aliases);
  } catch (error) {
    // Before any commit: the servers output says where it failed (the others: not-published).
    if (error instanceof ActionError && !(error instanceof FleetPartlyPublished))
      throw new FleetNotPublished(error.message, error.input, outcomes([...runs, ...buckets], false));
    throw error;
  } finally {
    await Promise.all(buckets.map((run) => discardBucketUploads(run)));
    for (const run of buckets) run.bucket.close();
    for (const run of runs) {
      if (run.upload) await run.upload.lock.release().catch(() => undefined);
      run.lockedRegistry?.close();
      run.registry?.close();
    }
    log.info(describeSshCounters());
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

/** "3 servers", "1 server and 1 bucket". */
export function describeFleet(runs: readonly unknown[], buckets: readonly unknown[]): string {
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  return buckets.length === 0
    ? count(runs.length, 'server')
    : `${count(runs.length, 'server')} and ${count(buckets.length, 'bucket')}`;
}

/** Deletes what this run uploaded to a bucket and did not copy into its tree (best effort). */
async function discardBucketUploads(run: BucketRun): Promise<void> {
  if (!run.uploads || run.result) return;
  await run.bucket.delete(run.uploads.map((upload) => upload.path)).catch(() => undefined);
}

/** dry-run: what a publish would do on each server; a bucket would serve what the host input's server does. */
async function previewFleet(
  runs: ServerRun[],
  buckets: BucketRun[],
  image: LocalImage,
  aliases: string[],
): Promise<FleetPublish> {
  await onEvery(runs, 'the dry run', async (run) => {
    const { live, deltas, existing } = run as Required<Pick<ServerRun, 'live' | 'deltas' | 'existing'>>;
    run.result = await preview(run.server.settings, image, { live, deltas, existing, aliases });
  });
  for (const run of buckets) run.result = (runs[0] as ServerRun).result;
  return fleetResult(runs, buckets, false);
}

/**
 * Upload (one read, every server and bucket at once) and stage on each server that lacks the
 * release; the buckets' uploads wait in their uploads folders.
 */
async function uploadAndStage(
  runs: ServerRun[],
  buckets: BucketRun[],
  image: LocalImage,
  aliases: string[],
): Promise<void> {
  const files = imageFiles(image);
  const shared = new SharedReads(files, runs.length + buckets.length);
  const turns = lockTurns(runs);
  try {
    await timedGroup(`Upload to ${describeFleet(runs, buckets)}`, async () => {
      const toBuckets = onEvery(buckets, 'the upload', async (run, k) => {
        const member = shared.member(runs.length + k);
        try {
          run.uploads = await uploadToBucket(run.bucket, files, { folder: newUploadFolder(), shared: member });
        } finally {
          member.leave();
        }
      });
      const toServers = onEvery(runs, 'the upload', async (run, k) => {
        const member = shared.member(k);
        const lockTurn = turns.get(run) as Turn;
        try {
          const settings = { ...run.server.settings, sharedReads: member, lockTurn };
          const uploaded = await upload(run.registry as Registry, settings, image, run.existing?.fingerprint);
          run.remote = uploaded.remote;
          run.upload = uploaded.upload;
        } finally {
          // However the upload ended (even before it read anything), it no longer holds the others back.
          lockTurn.end();
          member.leave();
        }
      });
      // Both ended before either failure is told: nothing goes on uploading behind the error.
      const [servers, ofBuckets] = await Promise.allSettled([toServers, toBuckets]);
      if (servers.status === 'rejected') throw servers.reason;
      if (ofBuckets.status === 'rejected') throw ofBuckets.reason;
    });
    const fingerprints = new Set(runs.map((run) => run.upload?.fingerprint));
    if (fingerprints.size !== 1) {
      throw new ActionError(
        `The image files changed while the step ran: the servers received different fingerprints (${[...fingerprints].join(', ')}). ` +
          'Make sure nothing writes them during the publish, and run it again.',
        'metadata',
      );
    }
    await timedGroup('Stage on every server', () =>
      onEvery(runs, 'staging', async (run) => {
        const {
          registry,
          remote,
          upload: uploaded,
        } = run as Required<Pick<ServerRun, 'registry' | 'remote' | 'upload'>>;
        run.change = await convert(registry, run.server.settings, {
          image,
          remote,
          upload: uploaded,
          aliases,
          ...(run.deltas && run.live ? { deltaBasesFrom: run.live } : {}),
        });
      }),
    );
  } catch (error) {
    await discardEveryStaging(runs);
    throw error;
  }
}

/** Removes this run's staging tree on each server that has one (under its image lock's lease). */
async function discardEveryStaging(runs: ServerRun[]): Promise<void> {
  await Promise.all(
    runs.map(async (run) => {
      if (run.registry && run.remote && run.upload)
        await discardStaging(run.registry, run.remote, run.upload.lock).catch(() => undefined);
    }),
  );
}

/**
 * Every server's registry lock, each on a connection of its own (the image lock holds a channel of
 * the first, and a server may allow few: sshd's MaxSessions), with the change planned on its live
 * index; then the commits.
 */
async function commitEverywhere(runs: ServerRun[], buckets: BucketRun[], aliases: string[]): Promise<FleetPublish> {
  try {
    await timedGroup('Take the registry lock on every server', async () => {
      await onEvery(runs, 'connecting for the registry lock', async (run) => {
        run.lockedRegistry = await Registry.open(run.server.settings);
      });
      await onEachInTurn(runs, 'taking the registry lock', async (run) => {
        const settings = run.server.settings;
        const lockedRegistry = run.lockedRegistry as Registry;
        const fingerprint = run.upload?.fingerprint ?? (run.existing as Existing).fingerprint;
        const change: Change = run.change ?? { kind: 'aliases' };
        const done = run.remote ? [run.remote.dir, stagingDir(lockedRegistry.paths, run.remote.key)] : [];
        run.prepared = await preparePublication(
          lockedRegistry,
          { fingerprint: fingerprint as string, aliases, options: settings },
          change,
          done,
        );
      });
    });
  } catch (error) {
    await Promise.all(runs.flatMap((run) => (run.prepared ? [run.prepared.release().catch(() => undefined)] : [])));
    await discardEveryStaging(runs);
    throw error;
  }
  await timedGroup('Commit on every server', async () => {
    await Promise.allSettled(
      runs.map((run) =>
        log.onServer(run.server.name, async () => {
          try {
            run.result = await (run.prepared as PreparedPublication).commit();
            // Under the same lock: no other run changes the index the buckets copy meanwhile.
            const prepared = run.prepared as PreparedPublication;
            if (run.server.primary)
              await syncBuckets(run.lockedRegistry as Registry, buckets, run.result, {
                caughtUp: 'published',
                lost: () => prepared.lost(),
              });
          } catch (error) {
            run.error = error;
          } finally {
            await run.prepared?.release().catch(() => undefined);
          }
        }),
      ),
    );
  });
  const primary = runs.find((run) => run.server.primary) as ServerRun;
  if (!primary.result) for (const run of buckets) run.error = notCopied(primary);
  const failed = [...runs, ...buckets].filter((run) => !run.result);
  if (failed.length === 0) return fleetResult(runs, buckets, true);
  await discardEveryStaging(runs.filter((run) => !run.result));
  const committed = [...runs, ...buckets].filter((run) => run.result).map(where);
  const reasons = failed.map((run) => `${where(run)}: ${failureOf(run).message.replace(/\.$/, '')}`).join('; ');
  const input = failed.map((run) => failureOf(run).input).find((name) => name !== undefined);
  if (committed.length === 0)
    throw new ActionError(
      `The commit failed on every server (${reasons}). Where the connection dropped during the commit, it may ` +
        'have gone through. Run the step again: a server that has the release reports unchanged, and the others publish it.',
      input,
    );
  throw new FleetPartlyPublished(
    `The release is published on ${committed.join(', ')} but its commit failed on ` +
      `${reasons}. Run the step again: the servers that have it report unchanged, and the others publish it.`,
    input,
    fleetResult(runs, buckets, true),
  );
}

/**
 * Copies to each bucket, from the host input's server and before its registry lock is taken,
 * what the bucket lacks of the releases that server serves (bucket/sync.ts prefillBucket).
 */
export async function prefillBuckets<R extends ServerResult>(
  registry: Registry,
  buckets: BucketRun<R>[],
): Promise<void> {
  if (buckets.length === 0) return;
  await timedGroup('Copy to the buckets what they lack of the releases already served', async () => {
    for (const run of buckets) await log.onServer(run.server.name, () => prefillBucket(registry, run.bucket));
  });
}

/** Why a bucket was not brought up to date: the host input's server, whose index it serves, did not commit. */
export function notCopied(primary: RunOnServer<ServerResult>): ActionError {
  return new ActionError(
    `not brought up to date: a bucket serves the index of the host input's server (${where(primary)}), whose commit failed`,
  );
}

/**
 * Makes every bucket serve what the host input's server serves now that `result` was committed
 * there (through `registry`, which holds its registry lock). A bucket that fails is marked so;
 * this never throws. `caughtUp`: a bucket's status when it now serves an index that the server
 * had already (the server's result was unchanged).
 */
export async function syncBuckets<R extends ServerResult>(
  registry: Registry,
  buckets: BucketRun<R>[],
  result: R,
  options: { caughtUp: R['status']; lost: () => boolean },
): Promise<void> {
  const { caughtUp, lost } = options;
  if (buckets.length === 0) return;
  await timedGroup(`Bring ${buckets.length === 1 ? 'the bucket' : `${buckets.length} buckets`} up to date`, () =>
    Promise.all(
      buckets.map((run) =>
        log.onServer(run.server.name, async () => {
          try {
            const synced = await syncBucket(registry, run.bucket, {
              ...(run.uploads ? { uploads: run.uploads } : {}),
              lost,
            });
            log.info(
              `${synced.copied} file(s) copied from this run's upload, ${synced.fromServer} from the server, ` +
                `${synced.removed} removed; index ${synced.indexChanged ? 'updated' : 'as it was'}`,
            );
            // A server that had the change already (unchanged, or not-found for a removal made before).
            const hadIt = result.status === 'unchanged' || result.status === 'not-found';
            const status = !synced.indexChanged ? 'unchanged' : hadIt ? caughtUp : result.status;
            run.result = { ...result, status, changedPaths: synced.changedPaths };
          } catch (error) {
            run.error = error;
          }
        }),
      ),
    ),
  );
}

/** The fleet's result: the release as the first server that has it serves it, with the fleet's status. */
function fleetResult(runs: ServerRun[], buckets: BucketRun[], committing: boolean): FleetPublish {
  const results = [...runs, ...buckets].flatMap((run) => (run.result ? [run.result] : []));
  const first = results[0];
  // Only called once a server committed or found the release there already.
  if (!first) throw new Error('internal error: no server reported a result');
  const changedPaths = [...new Set(results.flatMap((result) => result.changedPaths))];
  const status = fleetStatus(results.map((result) => result.status));
  const planned = results.flatMap((result) => (result.preview ? [result.preview.status] : []));
  const preview = first.preview ? { preview: { ...first.preview, status: fleetStatus(planned) } } : {};
  return {
    result: { ...first, status, changedPaths, ...preview },
    servers: outcomes([...runs, ...buckets], committing),
  };
}
