/** Making a new index live, under the registry lock (registry/server/commit.sh). */
import { Readable } from 'node:stream';
import { sha256Sums, SHA256SUMS_PATH } from '../simplestreams/checksums.js';
import { buildStreamsIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { scriptCommand } from '../ssh/shell.js';
import { nextDir } from './layout.js';
import type { HeldLock } from './lock.js';
import type { Registry } from './registry.js';
import { COMMIT } from './scripts.js';

/** A file the index can name and the action may retire: a plain name in images/. */
const RETIRABLE = /^images\/[A-Za-z0-9._-]+$/;

export interface CommitOptions {
  /** The registry lock, whose holder must still be alive when the renames start. */
  lock: HeldLock;
  index: ImagesIndex;
  /** Staging tree whose images/ holds the new files, if any. */
  staging?: string;
  /** Names (in images/) of the new version's files: the commit changes nothing if one is gone. */
  stagedFiles?: string[];
  /** Files the new index no longer names (kept for a while, then removed). */
  retired: string[];
  /** A command run after a successful commit, in the same round trip (the housekeeping); its output is returned. */
  andThen?: string;
}

export async function commit(registry: Registry, options: CommitOptions): Promise<Buffer> {
  const { simplestreamsDir } = registry.paths;
  const retired = options.retired.filter((path) => RETIRABLE.test(path) && path !== SHA256SUMS_PATH);
  // One round trip. index.json, the retired files, SHA256SUMS and images.json go over stdin (they grow with
  // the registry; a command line may not: sshd passes it to the shell as one argument).
  const sums = sha256Sums(options.index)
    .split('\n')
    .filter((line) => line !== '');
  const stdin = [
    JSON.stringify(buildStreamsIndex(options.index)),
    ...retired,
    '',
    ...sums,
    '',
    JSON.stringify(options.index),
  ];
  const command = scriptCommand(COMMIT.text, COMMIT.name, [
    simplestreamsDir,
    nextDir(registry.paths),
    options.staging ?? '',
    String(options.lock.pid),
    ...(options.stagedFiles ?? []),
  ]);
  return registry.session.run(options.andThen ? `${command} && ${options.andThen}` : command, {
    what:
      `Publishing the new index in ${simplestreamsDir} (simplestreams-dir)` +
      (options.andThen ? ', then cleaning up and reading it back' : ''),
    stdin: Readable.from([stdin.join('\n')]),
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
}
