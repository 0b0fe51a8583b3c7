/** Cleaning up after earlier runs, under the registry lock (registry/server/housekeeping.sh). */
import type { ImagesIndex } from '../simplestreams/images-index.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { commandLine, scriptCommand } from '../ssh/shell.js';
import { liveIndexPath, RETIRE_GRACE_SECONDS, UPLOAD_GRACE_SECONDS } from './layout.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';
import { HOUSEKEEPING } from './scripts.js';

/**
 * Cleans up after earlier runs and removes `done` (this run's own directories), then returns the
 * live index as it now stands: one round trip, under the registry lock.
 */
export async function housekeepAndRead(registry: Registry, done: string[] = []): Promise<ImagesIndex> {
  const output = await registry.session.run(housekeepingCommand(registry, done), {
    what: 'Cleaning up after earlier runs and reading the index back',
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
  return readBack(registry, output);
}

/** The housekeeping command, for housekeepAndRead or to follow the commit in its round trip. */
export function housekeepingCommand(registry: Registry, done: string[] = []): string {
  const { simplestreamsDir, uploadDir } = registry.paths;
  return scriptCommand(HOUSEKEEPING.text, HOUSEKEEPING.name, [
    simplestreamsDir,
    uploadDir,
    String(RETIRE_GRACE_SECONDS),
    String(UPLOAD_GRACE_SECONDS / 60),
    ...done,
  ]);
}

/** The live index the housekeeping printed. */
export function readBack(registry: Registry, output: Buffer): ImagesIndex {
  return parseIndexText(output, liveIndexPath(registry.paths));
}

export async function removeDirs(registry: Registry, dirs: string[]): Promise<void> {
  await registry.session.run(commandLine(['rm', '-rf', '--', ...dirs]), {
    what: `Removing ${dirs.join(', ')}`,
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
}
