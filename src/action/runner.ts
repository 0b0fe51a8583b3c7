/**
 * The runner this action works on, checked before anything else: Linux (the image tools it runs,
 * and everything its tests cover, are Linux's). The tools an image needs (its decompressor, a
 * squashfs converter) are checked where they are needed, before they are used (image/tools.ts,
 * image/rootfs.ts), each error naming the tool and its install line.
 */
import { ActionError } from '../common/errors.js';

/** Fails on a runner other than Linux, saying where to run the step instead. */
export function checkPlatform(platform: NodeJS.Platform = process.platform): void {
  if (platform === 'linux') return;
  throw new ActionError(
    `This action runs on Linux runners; this job runs on ${platform}. Run the publishing step in a job with ` +
      'runs-on: ubuntu-latest (or a self-hosted Linux runner), and hand it the image files from the build job ' +
      'as an artifact (actions/upload-artifact, then actions/download-artifact).',
  );
}
