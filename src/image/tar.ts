/**
 * Reading tarballs on the runner with GNU tar, whatever their compression (tar detects it). The
 * tarball is untrusted: tar's output is read as a stream and capped (a few kilobytes of xz can
 * unpack to gigabytes), tar runs under a time limit, and it gets a minimal environment (no
 * inputs, so no key, reach a tool that parses hostile input).
 */
import { spawn } from 'node:child_process';
import { ActionError } from '../common/errors.js';
import { toolEnvironment } from './tool-environment.js';

/** How long one tar run may take: reading metadata.yaml or the start of a listing is quick. */
const TAR_TIMEOUT_MS = 60_000;

interface TarRun {
  /** Called with each chunk of stdout; return false to stop tar (enough has been read). */
  onData(chunk: Buffer): boolean;
}

/** Runs tar with `args`; resolves when it ended or was stopped; fails with its stderr. */
function runTar(args: string[], run: TarRun, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', args, { env: toolEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stopped = false;
    let stderr = '';
    const stop = () => {
      stopped = true;
      tar.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      stop();
      reject(new ActionError(`${what}: tar did not finish within ${TAR_TIMEOUT_MS / 1000} s.`, 'metadata'));
    }, TAR_TIMEOUT_MS);
    tar.stdout.on('data', (chunk: Buffer) => {
      if (!stopped && !run.onData(chunk)) stop();
    });
    tar.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    tar.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === 'ENOENT'
          ? new ActionError(
              'tar is not installed on the runner; it is needed to read metadata.yaml. Install GNU tar and xz.',
            )
          : error,
      );
    });
    tar.on('close', (code) => {
      clearTimeout(timer);
      if (stopped || code === 0) resolve();
      else reject(new Error(stderr.trim() || `tar exited with status ${code ?? 'none'}`));
    });
  });
}

/** The most of metadata.yaml that is read: distrobuilder's are a few kilobytes. */
export const MAX_METADATA_BYTES = 1 << 20;

/**
 * The text of the member `name` (the first of that name, as the server reads it), or undefined
 * when the tarball has none. Stops and fails past MAX_METADATA_BYTES.
 */
export async function readMember(tarball: string, name: string): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let tooLarge = false;
  try {
    // --occurrence stops at the first match instead of reading the whole (possibly large) archive.
    await runTar(
      ['--occurrence=1', '-xOf', tarball, name],
      {
        onData: (chunk) => {
          bytes += chunk.length;
          if (bytes > MAX_METADATA_BYTES) {
            tooLarge = true;
            return false;
          }
          chunks.push(chunk);
          return true;
        },
      },
      `Reading ${name} from "${tarball}"`,
    );
  } catch (error) {
    if (error instanceof ActionError) throw error;
    return undefined; // no such member (tar says "Not found in archive")
  }
  if (tooLarge) {
    throw new ActionError(
      `metadata: ${name} in "${tarball}" is larger than ${MAX_METADATA_BYTES >> 20} MiB; distrobuilder writes a few ` +
        'kilobytes. Check the file: it is not an image this action publishes.',
      'metadata',
    );
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Entries read before the root file system at most, and the longest name: far above any real image. */
const MAX_ENTRIES_BEFORE_ROOTFS = 10_000;
const MAX_NAME_BYTES = 4096;

/**
 * Whether a unified tarball holds a VM disk (rootfs.img) or a container (rootfs/): the first of
 * them in the listing decides, as for incus-simplestreams; the listing stops there. Undefined
 * when the tarball has neither.
 */
export async function unifiedRootKind(tarball: string): Promise<'vm' | 'container' | undefined> {
  let kind: 'vm' | 'container' | undefined;
  let pending = '';
  let entries = 0;
  let problem: string | undefined;
  await runTar(
    ['-tf', tarball],
    {
      onData: (chunk) => {
        pending += chunk.toString('latin1');
        let end: number;
        while ((end = pending.indexOf('\n')) >= 0) {
          const name = pending.slice(0, end).replace(/^\.\//, '');
          pending = pending.slice(end + 1);
          if (name === 'rootfs.img') kind = 'vm';
          else if (name === 'rootfs' || name.startsWith('rootfs/')) kind = 'container';
          if (kind) return false;
          if (++entries > MAX_ENTRIES_BEFORE_ROOTFS) {
            problem = `has more than ${MAX_ENTRIES_BEFORE_ROOTFS} entries before its rootfs`;
            return false;
          }
        }
        if (pending.length > MAX_NAME_BYTES) {
          problem = `has an entry name longer than ${MAX_NAME_BYTES} bytes`;
          return false;
        }
        return true;
      },
    },
    `Listing "${tarball}"`,
  );
  if (problem) {
    throw new ActionError(
      `metadata: the unified tarball "${tarball}" ${problem}: it is not an image distrobuilder wrote.`,
      'metadata',
    );
  }
  return kind;
}
