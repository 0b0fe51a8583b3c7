/**
 * The action: the steps of the README's "What it does", in order, each one call (action/steps.ts),
 * then the outputs, the public check and the job summary.
 */
import * as core from '@actions/core';
import { timedGroup } from '../common/debug.js';
import { ActionError, FailedAfterPublishing } from '../common/errors.js';
import { closeFiles } from '../image/local-file.js';
import { imageFiles } from '../image/local-image.js';
import { checkPublicRegistry, type PublicCheckResult } from '../public/check.js';
import type { PublishResult } from '../registry/publication.js';
import type { Registry } from '../registry/registry.js';
import { describeSshCounters } from '../ssh/session.js';
import { readSettings, type Settings } from './inputs.js';
import { checkPlatform } from './runner.js';
import { setOutputs, setServersOutput } from './outputs.js';
import { FleetNotPublished, FleetPartlyPublished, oneServer, publishToFleet, type FleetPublish } from './fleet.js';
import {
  checkServer,
  connect,
  convert,
  discardStaging,
  findExisting,
  inspect,
  prepareRootfsTarball,
  preview,
  publishLocked,
  putAliases,
  requestedAliases,
  upload,
} from './steps.js';
import { runStep } from './step.js';
import { writeSummary } from './summary.js';

/** Publishes the image the settings name and returns what the registry now serves. */
export async function publish(settings: Settings): Promise<PublishResult> {
  const inspected = await inspect(settings); // 1. inspect locally
  // The files stay open, and are read through those descriptors, until the run is over.
  const cleanups: (() => Promise<void>)[] = [() => closeFiles(imageFiles(inspected))];
  let registry: Registry | undefined;
  try {
    const aliases = requestedAliases(settings, inspected);
    registry = await connect(settings); // 2. connect, host key checked
    const image = await prepareRootfsTarball(registry, settings, inspected, (cleanup) => cleanups.push(cleanup));
    const { live, deltas } = await checkServer(registry, settings, image); // 2. the server's tools and directories
    const existing = await findExisting(settings, image, live); // 3. skip what is already there
    if (settings.dryRun) return await preview(settings, image, { live, deltas, existing, aliases }); // changes nothing
    if (existing.published) return await putAliases(registry, settings, existing.fingerprint, aliases);
    const { remote, upload: uploaded } = await upload(registry, settings, image, existing.fingerprint); // 4.
    const publication = { fingerprint: uploaded.fingerprint, aliases };
    try {
      const input = { image, remote, upload: uploaded, aliases, ...(deltas ? { deltaBasesFrom: live } : {}) };
      const change = await convert(registry, settings, input); // 5. stage, deltas
      return await publishLocked(registry, settings, remote, publication, change); // 6. publish, 7. verify
    } catch (error) {
      await discardStaging(registry, remote, uploaded.lock);
      throw error;
    } finally {
      await uploaded.lock.release().catch(() => undefined);
    }
  } finally {
    if (registry) {
      registry.close();
      core.info(describeSshCounters());
    }
    // A squashfs converted from a rootfs tarball is not needed once the run is over.
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

/**
 * To the host input's server, or with mirrors to every server of the fleet (action/fleet.ts).
 * A fleet published on some servers only still reports its outputs before the step fails.
 */
async function publishEverywhere(settings: Settings): Promise<FleetPublish> {
  if (settings.mirrors.length === 0 && settings.buckets.length === 0) {
    const result = await publish(settings);
    return { result, servers: oneServer(settings, result) };
  }
  try {
    return await publishToFleet(settings);
  } catch (error) {
    if (error instanceof FleetPartlyPublished) {
      setOutputs(error.fleet.result, settings);
      setServersOutput(error.fleet.servers);
    }
    if (error instanceof FleetNotPublished) setServersOutput(error.servers);
    throw error;
  }
}

/** With public-url: what clients will see, checked over HTTPS. */
function checkPublic(settings: Settings, result: PublishResult): Promise<PublicCheckResult> {
  return timedGroup(`Check ${settings.publicUrl}`, () =>
    checkPublicRegistry({
      url: settings.publicUrl,
      fingerprint: result.fingerprint,
      timeoutSeconds: settings.publicCheckTimeout,
      log: core.info,
    }),
  );
}

/** The action's entry point: never throws; a failure fails the step with a message. */
export function run(): Promise<void> {
  return runStep('Image not published', async (onSettings) => {
    checkPlatform(); // before anything: the wrong runner is named as such
    const settings = onSettings(readSettings());
    const { result, servers } = await publishEverywhere(settings);
    setOutputs(result, settings); // 8. report
    setServersOutput(servers);
    let publicCheck: PublicCheckResult | undefined;
    let publicFailure: ActionError | undefined;
    try {
      if (settings.publicUrl && settings.publicCheck !== 'off' && !settings.dryRun) {
        try {
          publicCheck = await checkPublic(settings, result);
        } catch (error) {
          if (!(error instanceof ActionError)) throw error;
          publicFailure = error;
        }
      }
      core.setOutput('public-check', publicCheck ? 'passed' : publicFailure ? 'failed' : 'skipped');
    } finally {
      // The summary says "served" only when the public check passed. Outside a runner (a local
      // run) there is no summary file: the log has everything. `summary: false` turns it off.
      if (settings.summary && process.env['GITHUB_STEP_SUMMARY'])
        await writeSummary(result, {
          ...(settings.publicUrl ? { publicUrl: settings.publicUrl } : {}),
          ...(publicCheck ? { publicCheck } : {}),
          ...(publicFailure ? { publicFailure: publicFailure.message } : {}),
          ...(settings.remoteName ? { remoteName: settings.remoteName } : {}),
          lxd: settings.lxdCompat,
          servers,
        });
    }
    if (publicFailure) {
      // The image is live either way: say so, and let public-check decide whether the step fails.
      const message =
        `The image is published (${result.fingerprint}, status ${result.status}), but clients could not be confirmed to get ` +
        `it: ${publicFailure.message} (public-check: ${settings.publicCheck})`;
      if (settings.publicCheck === 'fail') throw new FailedAfterPublishing(message, publicFailure.input);
      core.warning(message, { title: 'lxc-publish: the public check failed' });
    }
  });
}
