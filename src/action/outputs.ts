/** The step's outputs (declared in action.yml), from what the registry now serves. */
import * as core from '@actions/core';
import type { PublishResult } from '../registry/publication.js';

export function setOutputs(result: PublishResult): void {
  core.setOutput('fingerprint', result.fingerprint);
  core.setOutput('product', result.product);
  core.setOutput('serial', result.serial);
  core.setOutput('aliases', result.aliases.join(','));
  core.setOutput('image-type', result.imageType);
  core.setOutput('size', String(result.size));
  core.setOutput('status', result.status);
  core.setOutput('deltas', JSON.stringify(result.deltas ?? []));
  core.setOutput('files', JSON.stringify(result.files));
}
