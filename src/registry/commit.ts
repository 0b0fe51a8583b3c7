/** Making a new index live, under the registry lock (registry/scripts.ts COMMIT). */
import { Readable } from 'node:stream';
import { buildStreamsIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { nextDir } from './layout.js';
import type { HeldLock } from './lock.js';
import type { Registry } from './registry.js';
import { COMMIT } from './scripts.js';

export interface CommitOptions {
  /** The registry lock, whose holder must still be alive when the renames start. */
  lock: HeldLock;
  index: ImagesIndex;
  /** Staging tree whose images/ holds the new files, if any. */
  staging?: string;
  /** Files the new index no longer names (kept for a while, then removed). */
  retired: string[];
}

export async function commit(registry: Registry, options: CommitOptions): Promise<void> {
  const { simplestreamsDir } = registry.paths;
  // One round trip: images.json goes over stdin, the (small) index.json as an argument.
  const retired = options.retired.filter((path) => /^images\/[A-Za-z0-9._-]+$/.test(path));
  await registry.runScript(
    COMMIT,
    [
      simplestreamsDir,
      nextDir(registry.paths),
      options.staging ?? '',
      String(options.lock.pid),
      JSON.stringify(buildStreamsIndex(options.index)),
      ...retired,
    ],
    {
      what: `Publishing the new index in ${simplestreamsDir} (simplestreams-dir)`,
      stdin: Readable.from([JSON.stringify(options.index)]),
      timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
    },
  );
}
