/**
 * Orchestration: inspect locally, connect, upload, convert, verify, report. Each phase is a log
 * group; each side effect lives in its own module.
 */
import * as core from '@actions/core';
import { ActionError, describeError } from './errors.js';
import { computeFingerprint, imageFiles, inspectImage } from './image.js';
import { readSettings, type Settings } from './inputs.js';
import {
  convert,
  createUploadDir,
  planUpload,
  readImagesIndex,
  removeDir,
  runIdentifier,
  uploadFile,
} from './registry.js';
import { findFingerprint } from './simplestreams.js';
import { RemoteSession } from './ssh.js';
import { writeSummary, type PublishResult } from './summary.js';
import { posix } from 'node:path';

/** Publishes the image the settings name and returns what the registry now serves. */
export async function publish(settings: Settings): Promise<PublishResult> {
  const { image, fingerprint } = await core.group('Inspect the image', async () => {
    const image = await inspectImage(settings.metadataPath, settings.rootfsPath);
    const { os, release, variant, propertiesArchitecture } = image.properties;
    core.info(`${image.imageType} image ${os} ${release} ${variant} ${propertiesArchitecture}, ${image.size} bytes`);
    const fingerprint = await computeFingerprint(imageFiles(image).map((file) => file.path));
    core.info(`Fingerprint: ${fingerprint}`);
    return { image, fingerprint };
  });

  const session = await core.group(`Connect to ${settings.host}:${settings.port}`, () =>
    RemoteSession.connect(settings),
  );
  try {
    const plan = planUpload(image, fingerprint, settings.uploadDir, runIdentifier());
    const remoteFiles = plan.files.map((file) => posix.join(plan.dir, file.remoteName));
    try {
      await core.group('Upload', async () => {
        await createUploadDir(session, settings.uploadDir, plan.dir);
        for (const [index, file] of plan.files.entries()) {
          await uploadFile(session, file.localPath, file.size, remoteFiles[index] as string, core.info);
        }
      });
      await core.group('Convert with incus-simplestreams', () => convert(session, settings, remoteFiles));
    } finally {
      await removeDir(session, plan.dir).catch((error: unknown) =>
        core.warning(`Could not remove the upload directory ${plan.dir}: ${describeError(error)}`),
      );
    }
    return await core.group('Verify the index', async () => {
      const index = await readImagesIndex(session, settings.simplestreamsDir);
      const published = findFingerprint(index, fingerprint);
      if (!published) {
        throw new ActionError(
          `The registry's images.json does not list fingerprint ${fingerprint} after incus-simplestreams add. ` +
            'Check simplestreams-dir and the server log; the image is not published.',
        );
      }
      const missing = settings.aliases.filter((alias) => !published.aliases.includes(alias));
      if (missing.length > 0) {
        core.warning(
          `Aliases ${missing.join(', ')} are not on ${published.product}: incus-simplestreams applies aliases only ` +
            'when it creates a product, and this product already existed.',
        );
      }
      core.info(`Published ${published.product} version ${published.serial}`);
      return { status: 'published', fingerprint, ...published } satisfies PublishResult;
    });
  } finally {
    session.dispose();
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
    await writeSummary(result);
  } catch (error) {
    // ActionError messages already name the input and the fix; anything else is unexpected.
    core.setFailed(error instanceof ActionError ? error.message : `Unexpected error: ${describeError(error)}`);
  }
}
