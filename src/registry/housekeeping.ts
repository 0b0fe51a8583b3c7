/** Cleaning up after earlier runs, under the registry lock (registry/scripts.ts HOUSEKEEPING). */
import type { ImagesIndex } from '../simplestreams/images-index.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { commandLine } from '../ssh/shell.js';
import { liveIndexPath, RETIRE_GRACE_SECONDS, UPLOAD_GRACE_SECONDS } from './layout.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';
import { HOUSEKEEPING } from './scripts.js';

/**
 * Cleans up after earlier runs and removes `done` (this run's own directories), then returns the
 * live index as it now stands: one round trip, under the registry lock.
 */
export async function housekeepAndRead(registry: Registry, done: string[] = []): Promise<ImagesIndex> {
  const { simplestreamsDir, uploadDir } = registry.paths;
  const output = await registry.runScript(
    HOUSEKEEPING,
    [simplestreamsDir, uploadDir, String(RETIRE_GRACE_SECONDS), String(UPLOAD_GRACE_SECONDS / 60), ...done],
    {
      what: 'Cleaning up after earlier runs and reading the index back',
      timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
    },
  );
  return parseIndexText(output, liveIndexPath(registry.paths));
}

export async function removeDirs(registry: Registry, dirs: string[]): Promise<void> {
  await registry.session.run(commandLine(['rm', '-rf', '--', ...dirs]), {
    what: `Removing ${dirs.join(', ')}`,
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
}
