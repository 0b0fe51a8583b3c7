/** The step's outputs (declared in action.yml), from what the registry now serves. */
import * as core from '@actions/core';
import { launchLine, REMOTE_PLACEHOLDER } from '../public/commands.js';
import type { PublishResult } from '../registry/publication.js';
import type { ServerOutcome, ServerResult } from './fleet.js';
import type { Settings } from './inputs.js';

export function setOutputs(result: PublishResult, settings: Pick<Settings, 'publicUrl' | 'remoteName'>): void {
  core.setOutput('fingerprint', result.fingerprint);
  core.setOutput('product', result.product);
  core.setOutput('serial', result.serial);
  core.setOutput('aliases', result.aliases.join(','));
  core.setOutput('image-type', result.imageType);
  core.setOutput('size', String(result.size));
  core.setOutput('status', result.status);
  core.setOutput('planned-status', result.preview?.status ?? '');
  core.setOutput('deltas', JSON.stringify(result.deltas ?? []));
  core.setOutput('files', JSON.stringify(result.files));
  core.setOutput('aliases-moved', JSON.stringify(result.aliasMoves));
  core.setOutput('registry-url', settings.publicUrl);
  core.setOutput('changed-paths', JSON.stringify(result.changedPaths));
  core.setOutput(
    'changed-urls',
    JSON.stringify(settings.publicUrl ? result.changedPaths.map((file) => `${settings.publicUrl}/${file}`) : []),
  );
  core.setOutput('launch-command', launchLine('incus', settings.remoteName || REMOTE_PLACEHOLDER, result));
}

/** The servers output: each server's outcome as JSON (one entry without mirrors). */
export function setServersOutput(servers: readonly ServerOutcome<ServerResult>[]): void {
  core.setOutput(
    'servers',
    JSON.stringify(
      servers.map(({ name, host, port, bucket, status, result, error }) => ({
        name,
        host,
        port,
        ...(bucket !== undefined ? { bucket } : {}),
        status,
        ...(result
          ? {
              fingerprint: result.fingerprint,
              product: result.product,
              serial: result.serial,
              changedPaths: result.changedPaths,
              ...(result.preview ? { plannedStatus: result.preview.status } : {}),
            }
          : {}),
        ...(error !== undefined ? { error } : {}),
      })),
    ),
  );
}
