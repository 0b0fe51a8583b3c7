/**
 * The alias and remove sub-actions (alias/action.yml, remove/action.yml): day-two operations on an
 * image already published, without image files. Each reads its inputs, connects as a publish
 * does, makes the change under the registry lock (registry/day-two.ts) and reports.
 */
import * as core from '@actions/core';
import { timedGroup } from '../common/debug.js';
import { removeImage, setAliases, type DayTwoResult } from '../registry/day-two.js';
import { Registry } from '../registry/registry.js';
import { readDayTwoSettings, type DayTwoSettings } from './inputs.js';
import { runStep } from './step.js';
import { writeDayTwoSummary } from './summary.js';

async function withRegistry(
  settings: DayTwoSettings,
  work: (registry: Registry) => Promise<DayTwoResult>,
): Promise<DayTwoResult> {
  // No upload-dir: nothing is uploaded, and housekeeping leaves uploads alone.
  const registry = await timedGroup(`Connect to ${settings.host}:${settings.port}`, () =>
    Registry.open({ ...settings, uploadDir: '' }),
  );
  try {
    return await work(registry);
  } finally {
    registry.close();
  }
}

async function report(result: DayTwoResult, settings: DayTwoSettings): Promise<void> {
  core.setOutput('status', result.status);
  core.setOutput('fingerprint', result.fingerprint);
  core.setOutput('aliases-moved', JSON.stringify(result.aliasMoves));
  core.setOutput('changed-paths', JSON.stringify(result.changedPaths));
  if (settings.summary && process.env['GITHUB_STEP_SUMMARY']) await writeDayTwoSummary(result);
}

const options = (settings: DayTwoSettings) => ({
  lockTimeout: settings.lockTimeout,
  lxdCompat: settings.lxdCompat,
  dryRun: settings.dryRun,
});

/** uses: crynux/lxc-publish/alias */
export function runAlias(): Promise<void> {
  return runStep('Aliases not changed', async (onSettings) => {
    const settings = onSettings(readDayTwoSettings('alias'));
    const result = await withRegistry(settings, (registry) =>
      timedGroup('Put the aliases in place under the registry lock', () =>
        setAliases(registry, { reference: settings.reference, aliases: settings.aliases, options: options(settings) }),
      ),
    );
    await report(result, settings);
  });
}

/** uses: crynux/lxc-publish/remove */
export function runRemove(): Promise<void> {
  return runStep('Image not removed', async (onSettings) => {
    const settings = onSettings(readDayTwoSettings('remove'));
    const result = await withRegistry(settings, (registry) =>
      timedGroup('Remove the image under the registry lock', () =>
        removeImage(registry, { reference: settings.reference, force: settings.force, options: options(settings) }),
      ),
    );
    await report(result, settings);
  });
}
