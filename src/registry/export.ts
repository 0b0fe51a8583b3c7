/**
 * Files of the registry read back to the runner (server/export.sh), for a bucket's copy of the
 * tree: the index, the retired list, and image files the runner does not have (deltas, releases
 * published before the bucket joined). Read while the run holds the registry lock, so nothing
 * changes them meanwhile.
 */
import { ActionError } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import type { Registry } from './registry.js';
import { EXPORT } from './scripts.js';

/** Bytes read in one command: well under what a command may print (ssh/session.ts). */
export const EXPORT_CHUNK_BYTES = 16 * 1024 * 1024;

const EXPORT_EXIT = { missing: 3, link: 4 } as const;

/** A file of the registry, or a part of it (`count` bytes from `offset`); undefined when there is none. */
export async function readRegistryFile(
  registry: Registry,
  path: string,
  part: { offset: number; count: number } | undefined = undefined,
): Promise<Buffer | undefined> {
  const where = `${registry.paths.simplestreamsDir}/${path}`;
  const result = await registry.execScript(
    EXPORT,
    [registry.paths.simplestreamsDir, path, String(part?.offset ?? 0), part ? String(part.count) : ''],
    { timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS, what: `Reading ${where}` },
  );
  if (result.code === 0) return result.stdout;
  if (result.code === EXPORT_EXIT.missing) return undefined;
  if (result.code === EXPORT_EXIT.link) {
    throw new ActionError(
      `${untrusted(where)} is (or lies under) a symbolic link on the server, so it was not copied to the bucket, and the bucket's index was left as it was. ` +
        'Replace the link with the file or directory itself (the action never follows a link it did not make).',
      'simplestreams-dir',
    );
  }
  throw new ActionError(
    `Reading ${untrusted(where)} on the server failed (exit ${result.code ?? result.signal}: ${untrusted(result.stderr.trim().slice(-300))}); ` +
      'check that the SSH user can read simplestreams-dir, and run the step again.',
    'simplestreams-dir',
  );
}

/** A file of the registry, `size` bytes long, read in chunks; fails when it is shorter or gone. */
export async function* registryFileChunks(registry: Registry, path: string, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < size; offset += EXPORT_CHUNK_BYTES) {
    const count = Math.min(EXPORT_CHUNK_BYTES, size - offset);
    const chunk = await readRegistryFile(registry, path, { offset, count });
    if (!chunk || chunk.length !== count) {
      throw new ActionError(
        `${untrusted(path)} on the server is shorter than its index says (${size} bytes): ` +
          'run the check sub-action with repair: true, then the step again.',
        'simplestreams-dir',
      );
    }
    yield chunk;
  }
}
