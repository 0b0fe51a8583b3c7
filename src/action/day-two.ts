/**
 * The alias and remove sub-actions (alias/action.yml, remove/action.yml): day-two operations on an
 * image already published, without image files. Each reads its inputs, connects as a publish
 * does, makes the change under the registry lock (registry/day-two.ts) and reports. With mirrors,
 * every server takes its lock (in the fleet's order) and plans the change, and none commits until
 * all have, on the same image.
 */
import * as core from '@actions/core';
import { timedGroup } from '../common/debug.js';
import { ActionError } from '../common/errors.js';
import * as log from '../common/log.js';
import { Barrier, BarrierBroken, type Turn } from '../common/together.js';
import { removeImage, setAliases, type DayTwoOptions, type DayTwoResult } from '../registry/day-two.js';
import { Registry } from '../registry/registry.js';
import {
  bucketRunsOf,
  describeFleet,
  failureOf,
  fleetOf,
  lockTurns,
  notCopied,
  oneServer,
  prefillBuckets,
  outcomes,
  syncBuckets,
  where,
  type BucketRun,
  type Server,
  type ServerOutcome,
} from './fleet.js';
import { readDayTwoSettings, type DayTwoSettings } from './inputs.js';
import { setServersOutput } from './outputs.js';
import { runStep } from './step.js';
import { writeDayTwoSummary } from './summary.js';

type Operation = (registry: Registry, options: DayTwoOptions) => Promise<DayTwoResult>;

const optionsOf = (settings: DayTwoSettings): DayTwoOptions => ({
  lockTimeout: settings.lockTimeout,
  lxdCompat: settings.lxdCompat,
  dryRun: settings.dryRun,
});

/** The status that says most of the fleet: a change anywhere, else none. */
function fleetStatus(results: DayTwoResult[]): DayTwoResult['status'] {
  const order: DayTwoResult['status'][] = ['removed', 'updated', 'dry-run', 'unchanged', 'not-found'];
  return order.find((status) => results.some((result) => result.status === status)) ?? 'unchanged';
}

/** Every server that resolved the reference must have resolved it to the same image. */
function sameImage(fingerprints: (string | undefined)[]): Error | undefined {
  const named = [...new Set(fingerprints.filter((fingerprint) => fingerprint !== undefined))];
  if (named.length === 1) return undefined;
  if (named.length === 0)
    return new ActionError('fingerprint: no server of the fleet lists that image; nothing was changed.', 'fingerprint');
  return new ActionError(
    `fingerprint: names different images on the servers of the fleet (${named.join(', ')}), so nothing was changed. ` +
      "Give the image's full fingerprint (the publish step's fingerprint output) instead of an alias.",
    'fingerprint',
  );
}

interface FleetRun {
  server: Server<DayTwoSettings>;
  registry?: Registry;
  result?: DayTwoResult;
  error?: unknown;
}

/** The change failed on some servers of the fleet; the servers output says where. */
class FleetChangeFailed extends ActionError {
  constructor(
    message: string,
    input: string | undefined,
    readonly servers: ServerOutcome<DayTwoResult>[],
  ) {
    super(message, input);
  }
}

/** Makes the change on every server, or (when one fails before committing) on none. */
async function onFleet(
  settings: DayTwoSettings,
  { operation, caughtUp }: Change,
): Promise<{ result: DayTwoResult; servers: ServerOutcome<DayTwoResult>[] }> {
  const runs: FleetRun[] = fleetOf(settings).map((server) => ({ server }));
  const buckets = bucketRunsOf<DayTwoResult>(settings.buckets);
  const members: (FleetRun | BucketRun<DayTwoResult>)[] = [...runs, ...buckets];
  const turns = lockTurns(runs);
  const ready = new Barrier<string | undefined>(runs.length, sameImage);
  try {
    await timedGroup(`Connect to ${describeFleet(runs, buckets)}`, () =>
      Promise.all(
        members.map((run) =>
          log.onServer(run.server.name, async () => {
            try {
              if ('bucket' in run) await run.bucket.check();
              else run.registry = await Registry.open({ ...run.server.settings, uploadDir: '' });
            } catch (error) {
              run.error = error;
            }
          }),
        ),
      ),
    );
    const unreachable = members.filter((run) => run.error !== undefined);
    if (unreachable.length > 0) throw failure('connecting', unreachable, members, false);
    if (!settings.dryRun) await prefillBuckets((runs[0] as FleetRun).registry as Registry, buckets);
    let committing = false;
    await Promise.all(
      runs.map((run) =>
        log.onServer(run.server.name, async () => {
          const turn = turns.get(run) as Turn;
          const fleet = {
            lockTurn: turn,
            ready: async (fingerprint: string | undefined) => {
              await ready.arrive(fingerprint);
              committing = true;
            },
            stillGoing: () => {
              if (ready.broken) throw new BarrierBroken(undefined);
            },
            fail: (error: unknown) => ready.fail(error),
          };
          // Under the host input's server's lock, once its change is made: the buckets serve its index.
          const whileLocked = run.server.primary
            ? (registry: Registry, result: DayTwoResult, lost: () => boolean) =>
                syncBuckets(registry, buckets, result, { caughtUp, lost })
            : undefined;
          try {
            run.result = await operation(run.registry as Registry, {
              ...optionsOf(run.server.settings),
              fleet,
              ...(whileLocked ? { whileLocked } : {}),
            });
          } catch (error) {
            run.error = error;
            ready.fail(error);
          } finally {
            turn.end();
          }
        }),
      ),
    );
    const primary = runs.find((run) => run.server.primary) as FleetRun;
    for (const run of buckets) {
      // A dry run: a bucket would serve what the server does.
      if (settings.dryRun) run.result = primary.result;
      else if (!primary.result) run.error = notCopied(primary);
    }
    const failed = members.filter((run) => run.error !== undefined);
    if (failed.length > 0) throw failure('the change', failed, members, committing);
    // A dry run meets no barrier: it refuses what the real run would.
    const disagreement = settings.dryRun
      ? sameImage(runs.map((run) => (run.result?.status === 'not-found' ? undefined : run.result?.fingerprint)))
      : undefined;
    if (disagreement) throw new FleetChangeFailed(disagreement.message, 'fingerprint', outcomes(members, false));
    const results = members.flatMap((run) => (run.result ? [run.result] : []));
    const [head] = results;
    if (!head) throw new Error('internal error: no server reported a result');
    // What the summary and outputs describe: the first server that found the image.
    const first = results.find((result) => result.status !== 'not-found') ?? head;
    const changedPaths = [...new Set(results.flatMap((result) => result.changedPaths))];
    return { result: { ...first, status: fleetStatus(results), changedPaths }, servers: outcomes(members, true) };
  } finally {
    for (const run of runs) run.registry?.close();
    for (const run of buckets) run.bucket.close();
  }
}

/** The error of a fleet change that failed somewhere: where, why, and what became of the others. */
type Member = FleetRun | BucketRun<DayTwoResult>;

function failure(phase: string, failed: Member[], runs: Member[], committing: boolean): FleetChangeFailed {
  const own = failed.filter((run) => !(run.error instanceof BarrierBroken));
  const cause = own.length > 0 ? own : failed;
  const reason = (run: Member): string => failureOf(run).message.replace(/\.$/, '');
  // The servers disagreeing on the image is one error, given to each: said once.
  const [firstCause] = cause;
  const shared = firstCause !== undefined && cause.length > 1 && cause.every((run) => run.error === firstCause.error);
  const reasons = shared
    ? [`every server: ${reason(firstCause)}`]
    : cause.map((run) => `${where(run)}: ${reason(run)}`);
  const input = cause.map((run) => failureOf(run).input).find((name) => name !== undefined);
  const changed = runs.filter((run) => run.result && run.result.changedPaths.length > 0).map(where);
  const rerun =
    'Run the step again: the servers that have the change report unchanged (or not-found, for a removal), and the ' +
    'others make it.';
  const message = !committing
    ? `Nothing was changed on any server: ${phase} failed on ${reasons.join('; ')}. Fix that server, or take it ` +
      'out of mirrors, and run the step again.'
    : changed.length > 0
      ? `The change was made on ${changed.join(', ')} but the commit failed on ${reasons.join('; ')}. ${rerun}`
      : `The commit failed on ${reasons.join('; ')}; where the connection dropped during the commit, it may have ` +
        `gone through. ${rerun}`;
  return new FleetChangeFailed(message, input, outcomes(runs, committing));
}

/** Runs the operation on the one server, or on the fleet, and reports. */
/**
 * A sub-action's change: the operation on one server, and the status a bucket reports when it
 * gets a change its server had already (the server reports unchanged or not-found).
 */
interface Change {
  operation: Operation;
  caughtUp: DayTwoResult['status'];
}

async function makeChange(settings: DayTwoSettings, change: Change): Promise<void> {
  const { operation } = change;
  if (settings.mirrors.length === 0 && settings.buckets.length === 0) {
    const registry = await timedGroup(`Connect to ${settings.host}:${settings.port}`, () =>
      Registry.open({ ...settings, uploadDir: '' }),
    );
    let result: DayTwoResult;
    try {
      result = await operation(registry, optionsOf(settings));
    } finally {
      registry.close();
    }
    await report(result, settings, oneServer(settings, result));
    return;
  }
  try {
    const { result, servers } = await onFleet(settings, change);
    await report(result, settings, servers);
  } catch (error) {
    if (error instanceof FleetChangeFailed) setServersOutput(error.servers);
    throw error;
  }
}

async function report(
  result: DayTwoResult,
  settings: DayTwoSettings,
  servers: ServerOutcome<DayTwoResult>[],
): Promise<void> {
  core.setOutput('status', result.status);
  core.setOutput('fingerprint', result.fingerprint);
  core.setOutput('aliases-moved', JSON.stringify(result.aliasMoves));
  core.setOutput('changed-paths', JSON.stringify(result.changedPaths));
  setServersOutput(servers);
  if (settings.summary && process.env['GITHUB_STEP_SUMMARY']) await writeDayTwoSummary(result, servers);
}

/** uses: crynux/lxc-publish/alias */
export function runAlias(): Promise<void> {
  return runStep('Aliases not changed', async (onSettings) => {
    const settings = onSettings(readDayTwoSettings('alias'));
    await makeChange(settings, {
      operation: (registry, options) =>
        timedGroup('Put the aliases in place under the registry lock', () =>
          setAliases(registry, { reference: settings.reference, aliases: settings.aliases, options }),
        ),
      caughtUp: 'updated',
    });
  });
}

/** uses: crynux/lxc-publish/remove */
export function runRemove(): Promise<void> {
  return runStep('Image not removed', async (onSettings) => {
    const settings = onSettings(readDayTwoSettings('remove'));
    await makeChange(settings, {
      operation: (registry, options) =>
        timedGroup('Remove the image under the registry lock', () =>
          removeImage(registry, { reference: settings.reference, force: settings.force, options }),
        ),
      caughtUp: 'removed',
    });
  });
}
