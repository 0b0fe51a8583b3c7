/**
 * The steps this action runs on the registry server. Commands are built from argument lists by
 * shell.ts; the few server-side scripts below are constants that take every value as a quoted
 * positional argument; file contents travel over the SSH channel's stdin.
 *
 * Server-side layout (all under simplestreams-dir, on the same file system as the live tree so
 * that renames are atomic):
 *   .lxc-publish/lock               the registry lock: one writer at a time
 *   .lxc-publish/staging/<key>/     where incus-simplestreams add writes a new image's files
 *   .lxc-publish/next/              the next images.json and index.json, before their rename
 *   .lxc-publish/retired            files of replaced versions, kept for a while for cached clients
 * and under upload-dir:
 *   <key>/.lock, <key>/<name>[.partial]   one directory per image, locked by the run uploading it
 * where <key> is the image's upload key (image.ts: known before the fingerprint, which is
 * computed while uploading).
 */
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { posix } from 'node:path';
import { ActionError, describeError } from './errors.js';
import { commandChain, commandLine } from './shell.js';
import { buildStreamsIndex, emptyImagesIndex, parseImagesIndex, type ImagesIndex } from './simplestreams.js';
import { ProgressCounter, formatProgress } from './progress.js';
import { HeldCommandEnded, SHORT_COMMAND_TIMEOUT_SECONDS, remoteFailure, type RemoteSession } from './ssh.js';
import type { Compression, LocalImage } from './image.js';

export const STATE_DIR = '.lxc-publish';
/** Files of a replaced version stay downloadable this long: clients cache an index for about an hour. */
export const RETIRE_GRACE_SECONDS = 2 * 3600;
/** Partial uploads of runs that never came back are removed after this long (until then they resume). */
export const UPLOAD_GRACE_SECONDS = 24 * 3600;

export interface RegistryPaths {
  simplestreamsDir: string;
  uploadDir: string;
}

export const lockPath = (paths: RegistryPaths): string => posix.join(paths.simplestreamsDir, STATE_DIR, 'lock');
export const stagingDir = (paths: RegistryPaths, uploadKey: string): string =>
  posix.join(paths.simplestreamsDir, STATE_DIR, 'staging', uploadKey);
export const nextDir = (paths: RegistryPaths): string => posix.join(paths.simplestreamsDir, STATE_DIR, 'next');
export const imageUploadDir = (paths: RegistryPaths, uploadKey: string): string =>
  posix.join(paths.uploadDir, uploadKey);

/** One file to upload: where it is and its fixed name on the server. */
export interface UploadFile {
  localPath: string;
  size: number;
  remoteName: string;
}

const TARBALL_EXTENSIONS: Record<Compression, string> = {
  xz: '.tar.xz',
  gzip: '.tar.gz',
  bzip2: '.tar.bz2',
  zstd: '.tar.zst',
  none: '.tar',
};

/** Fixed remote names, so nothing from the runner's file names reaches the server. */
export function remoteNames(image: LocalImage): string[] {
  const metadataName = (image.data ? 'metadata' : 'image') + TARBALL_EXTENSIONS[image.metadata.compression];
  if (!image.data) return [metadataName];
  const dataNames = {
    squashfs: 'rootfs.squashfs',
    qcow2: 'disk.qcow2',
    'rootfs-tarball': `rootfs${TARBALL_EXTENSIONS[image.data.compression ?? 'none']}`,
  };
  return [metadataName, dataNames[image.data.kind]];
}

/** The version of incus-simplestreams on the server (for example "6.0.4"). */
export async function serverToolVersion(session: RemoteSession): Promise<string> {
  const output = await session.run(
    commandLine(['incus-simplestreams', '--version']),
    'Asking the server for its incus-simplestreams version',
    undefined,
    SHORT_COMMAND_TIMEOUT_SECONDS,
  );
  return output.toString('utf8').trim();
}

/** The first incus-simplestreams that takes a raw rootfs tarball (a root.tar.xz item). */
export const ROOTFS_TARBALL_SINCE = [7, 0, 1];

function versionAtLeast(version: string, minimum: number[]): boolean {
  const parts = version.split(/[.+~-]/).map((part) => Number.parseInt(part, 10));
  for (const [index, wanted] of minimum.entries()) {
    const have = parts[index] ?? 0;
    if (Number.isNaN(have)) return false;
    if (have !== wanted) return have > wanted;
  }
  return true;
}

/** Whether to turn a rootfs tarball into a squashfs on the runner, and why (for the log). */
export function rootfsDecision(
  mode: 'auto' | 'always' | 'never',
  serverVersion: string | undefined,
): { convert: boolean; reason: string } {
  if (mode === 'always')
    return { convert: true, reason: 'convert-rootfs is always: converting rootfs tarball into a squashfs' };
  const takesTarball = serverVersion !== undefined && versionAtLeast(serverVersion, ROOTFS_TARBALL_SINCE);
  if (takesTarball) {
    return {
      convert: false,
      reason: `The server's incus-simplestreams ${serverVersion} takes a rootfs tarball: uploading it as it is`,
    };
  }
  if (mode === 'never') {
    throw new ActionError(
      `The server's incus-simplestreams ${serverVersion ?? '(unknown version)'} cannot take a rootfs tarball ` +
        `(7.0.1 and later can). Set convert-rootfs: auto to convert it into a squashfs on the runner, or pass rootfs.squashfs.`,
      'convert-rootfs',
    );
  }
  return {
    convert: true,
    reason: `The server's incus-simplestreams ${serverVersion ?? '(unknown version)'} cannot take a rootfs tarball (7.0.1 and later can): converting it into a squashfs on the runner`,
  };
}

/** The owner's convert-command, run in simplestreams-dir with documented, quoted arguments. */
export function customConvertCommand(
  command: string,
  simplestreamsDir: string,
  args: { metadata: string; data: string; fingerprint: string; serial: string; aliases: string[] },
): string {
  return commandChain([
    ['cd', '--', simplestreamsDir],
    ['env', 'TZ=UTC', command, args.metadata, args.data, args.fingerprint, args.serial, ...args.aliases],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Locks

/**
 * Holds an flock on `$1` for as long as this command runs, waiting at most `$2` seconds for it
 * (exit 75 on timeout). It prints "locked PID" once it holds the lock, then waits for its stdin
 * to close: when the run releases the lock, or when its SSH session dies, the lock goes with it.
 * A holder may delete the lock file while holding it (to clean up); a waiter then finds that it
 * locked a deleted file, and takes the lock again on the current one.
 */
const HOLD_LOCK_SCRIPT = `lock=$1 timeout=$2
mkdir -p -- "\${lock%/*}" || exit 1
while :; do
  exec 9>>"$lock" || exit 1
  flock -w "$timeout" -E 75 9 || exit $?
  [ "$lock" -ef "/proc/$$/fd/9" ] && break
  exec 9>&-
done
echo "locked $$"
exec cat >/dev/null`;

export interface HeldLock {
  /** PID of the server-side holder, checked before the commit renames. */
  pid: number;
  release(): Promise<void>;
}

export async function holdLock(
  session: RemoteSession,
  path: string,
  timeoutSeconds: number,
  busyMessage: string,
): Promise<HeldLock> {
  try {
    const held = await session.startHeld(
      commandLine(['sh', '-c', HOLD_LOCK_SCRIPT, 'lxc-publish-lock', path, String(timeoutSeconds)]),
    );
    const pid = Number(/^locked (\d+)$/.exec(held.firstLine)?.[1]);
    if (!Number.isInteger(pid)) {
      await held.release();
      throw new ActionError(`Taking the lock ${path} failed: unexpected answer "${held.firstLine}".`);
    }
    return { pid, release: () => held.release() };
  } catch (error) {
    if (error instanceof HeldCommandEnded) {
      if (error.result.code === 75) throw new ActionError(busyMessage, 'lock-timeout');
      throw new ActionError(remoteFailure(`Taking the lock ${path}`, error.result));
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Upload

/**
 * Reports, for each name, the size of the complete file and of the partial one (-1 if absent).
 * It first takes the image's write lock: a writer left over from a dropped connection may still
 * be draining into a partial file, and its size is only final once that writer is gone.
 */
const UPLOAD_STATE_SCRIPT = `dir=$1 timeout=$2; shift 2
mkdir -p -- "$dir" || exit 1
exec 8>>"$dir/.write.lock" || exit 1
flock -w "$timeout" -E 75 8 || exit $?
for name; do
  final=-1 partial=-1
  [ -f "$dir/$name" ] && final=$(stat -c %s -- "$dir/$name")
  [ -f "$dir/$name.partial" ] && partial=$(stat -c %s -- "$dir/$name.partial")
  printf '%s %s %s\\n' "$name" "$final" "$partial"
done`;

/**
 * Appends stdin to `$2.partial` under the image's write lock, and gives it its final name only
 * when it holds all `$5` bytes: a dropped connection also ends stdin, and must not look complete.
 */
const WRITE_SCRIPT = `dir=$1 name=$2 timeout=$3 restart=$4 size=$5
partial=$dir/$name.partial
exec 8>>"$dir/.write.lock" || exit 1
flock -w "$timeout" -E 75 8 || exit $?
if [ "$restart" = 1 ]; then : > "$partial" || exit 1; fi
cat >> "$partial" || exit 1
got=$(stat -c %s -- "$partial") || exit 1
if [ "$got" != "$size" ]; then echo "incomplete upload: $got of $size bytes arrived" >&2; exit 1; fi
mv -f -- "$partial" "$dir/$name"`;

export interface RemoteFileState {
  /** Size of the complete file, or -1. */
  final: number;
  /** Size of the partial file, or -1. */
  partial: number;
}

export async function uploadState(
  session: RemoteSession,
  dir: string,
  names: string[],
  timeoutSeconds: number,
): Promise<Map<string, RemoteFileState>> {
  const output = await session.run(
    commandLine(['sh', '-c', UPLOAD_STATE_SCRIPT, 'lxc-publish-state', dir, String(timeoutSeconds), ...names]),
    `Checking earlier uploads in ${dir}`,
    undefined,
    timeoutSeconds + SHORT_COMMAND_TIMEOUT_SECONDS,
  );
  const states = new Map<string, RemoteFileState>();
  for (const line of output.toString('utf8').trim().split('\n')) {
    const [name, final, partial] = line.split(' ');
    if (name) states.set(name, { final: Number(final), partial: Number(partial) });
  }
  return states;
}

export async function remoteSha256(session: RemoteSession, path: string): Promise<string> {
  const output = await session.run(commandLine(['sha256sum', '--', path]), `Hashing ${path} on the server`);
  return output.toString('utf8').split(' ')[0] ?? '';
}

/**
 * Streams a file (from `offset`, to resume) onto `<name>.partial`, and renames it to its final
 * name once complete, so a partial file never carries the final name.
 */
export async function sendFile(
  session: RemoteSession,
  file: UploadFile,
  dir: string,
  offset: number,
  timeoutSeconds: number,
  log: (line: string) => void,
  hashes: Hash[] = [],
): Promise<void> {
  const counter = new ProgressCounter(file.remoteName, file.size, log, 5000, offset, hashes);
  const source = createReadStream(file.localPath, { start: offset, highWaterMark: 256 * 1024 });
  source.on('error', (error) => counter.destroy(error));
  const restart = offset === 0 ? '1' : '0';
  await session.run(
    commandLine([
      'sh',
      '-c',
      WRITE_SCRIPT,
      'lxc-publish-write',
      dir,
      file.remoteName,
      String(timeoutSeconds),
      restart,
      String(file.size),
    ]),
    `Uploading ${file.localPath} to ${posix.join(dir, file.remoteName)}`,
    source.pipe(counter),
  );
  log(formatProgress(counter.snapshot()));
}

// ---------------------------------------------------------------------------------------------
// Convert and publish

/** Runs incus-simplestreams add in an empty staging tree of the image's own. */
export function stageCommand(staging: string, remoteFiles: string[]): string {
  return commandChain([
    ['rm', '-rf', '--', staging],
    ['mkdir', '-p', '--', staging],
    ['cd', '--', staging],
    // Aliases are applied by the action when it merges the version into the live index.
    ['env', 'TZ=UTC', 'incus-simplestreams', 'add', '--no-default-alias', '--', ...remoteFiles],
  ]);
}

export async function stage(session: RemoteSession, staging: string, remoteFiles: string[]): Promise<ImagesIndex> {
  // One round trip: the tool's index is printed once the tool has written it.
  const output = await session.run(
    `${stageCommand(staging, remoteFiles)} >&2 && ${commandLine(['cat', '--', 'streams/v1/images.json'])}`,
    'incus-simplestreams add (in the staging tree)',
  );
  return parseIndexText(output, posix.join(staging, 'streams/v1/images.json'));
}

function parseIndexText(text: Buffer, path: string): ImagesIndex {
  try {
    return parseImagesIndex(text.toString('utf8'));
  } catch (error) {
    throw new ActionError(
      `${path} on the server cannot be read as a simplestreams index: ${describeError(error)}. ` +
        "If the SSH user's shell startup files (.bashrc) print text, make them quiet for non-interactive logins.",
    );
  }
}

/**
 * Prints images.json; exits 3 when there is none yet, 4 when simplestreams-dir itself is missing.
 * Before a publish it first checks what the server must offer, so that a missing tool or an
 * unwritable directory is found before a large upload: exit 5 when the convert tool (`$3`) is not
 * on the PATH, 6 when upload-dir (`$2`) cannot be written, 7 when simplestreams-dir cannot be.
 */
const READ_LIVE_SCRIPT = `ss=$1 up=$2 tool=$3
[ -d "$ss" ] || exit 4
if [ -n "$tool" ]; then command -v "$tool" >/dev/null 2>&1 || exit 5; fi
if [ -n "$up" ]; then { mkdir -p -- "$up" && [ -w "$up" ]; } 2>/dev/null || exit 6; fi
if [ -n "$up" ]; then
  for dir in "$ss" "$ss/.lxc-publish" "$ss/.lxc-publish/staging" "$ss/images" "$ss/streams/v1"; do
    if [ -e "$dir" ] && [ ! -w "$dir" ]; then echo "$dir" >&2; exit 7; fi
  done
fi
if [ -e "$ss/streams/v1/images.json" ]; then exec cat -- "$ss/streams/v1/images.json"; fi
exit 3`;

export interface Preflight {
  uploadDir: string;
  /** The convert tool that must be on the server's PATH: incus-simplestreams or convert-command. */
  tool: string;
}

/**
 * The live images.json, or an empty index when the registry has none yet. With `preflight`, it
 * also checks the server before anything is uploaded.
 */
export async function readLiveIndex(
  session: RemoteSession,
  simplestreamsDir: string,
  preflight?: Preflight,
): Promise<ImagesIndex> {
  const path = posix.join(simplestreamsDir, 'streams/v1/images.json');
  // Exit codes, not stderr, tell the cases apart: a login shell may print noise of its own.
  const result = await session.exec(
    commandLine([
      'sh',
      '-c',
      READ_LIVE_SCRIPT,
      'lxc-publish-read',
      simplestreamsDir,
      preflight?.uploadDir ?? '',
      preflight?.tool ?? '',
    ]),
    undefined,
    SHORT_COMMAND_TIMEOUT_SECONDS,
  );
  switch (result.code) {
    case 3:
      return emptyImagesIndex();
    case 4:
      throw new ActionError(
        `simplestreams-dir: ${simplestreamsDir} does not exist on the server. Create it (see the README's server setup) or fix the input.`,
        'simplestreams-dir',
      );
    case 5:
      throw new ActionError(
        preflight?.tool === 'incus-simplestreams'
          ? "incus-simplestreams is not installed on the server (or not on the SSH user's PATH). Install the " +
              'incus-extra package (Debian bookworm-backports, Debian 13, Ubuntu 24.04). Nothing was uploaded.'
          : `convert-command: ${preflight?.tool ?? ''} is not an executable on the server's PATH. Nothing was uploaded.`,
        preflight?.tool === 'incus-simplestreams' ? 'simplestreams-dir' : 'convert-command',
      );
    case 6:
      throw new ActionError(
        `upload-dir: the SSH user cannot write (or create) ${preflight?.uploadDir ?? ''} on the server. Give it ` +
          "ownership of that directory (see the README's server setup). Nothing was uploaded.",
        'upload-dir',
      );
    case 7:
      throw new ActionError(
        `simplestreams-dir: the SSH user cannot write ${result.stderr.trim().split('\n').at(-1) ?? simplestreamsDir} on ` +
          "the server. Give it ownership of simplestreams-dir and everything in it (see the README's server setup). " +
          'Nothing was uploaded.',
        'simplestreams-dir',
      );
    case 0:
      return parseIndexText(result.stdout, path);
    default:
      throw new ActionError(remoteFailure(`Reading ${path}`, result));
  }
}

/**
 * Makes a new index live, under the registry lock: image files first, then images.json, then
 * index.json, each by rename. Before the renames it checks that the lock holder is still alive,
 * so a run whose session died mid-way changes nothing. The names of the files moved into
 * images/ are recorded in the staging tree first: if the run dies before the index names them,
 * a later run removes them.
 */
const COMMIT_SCRIPT = `set -eu
ss=$1 next=$2 staging=$3 holder=$4 index_json=$5; shift 5
rm -rf -- "$next"
mkdir -p -- "$next"
cat > "$next/images.json"
printf '%s' "$index_json" > "$next/index.json"
kill -0 "$holder" 2>/dev/null || { echo "the registry lock was lost; nothing was changed" >&2; exit 75; }
mkdir -p -- "$ss/images" "$ss/streams/v1"
for json in images.json index.json; do
  if [ -f "$ss/streams/v1/$json" ]; then chmod --reference="$ss/streams/v1/$json" -- "$next/$json"; fi
done
if [ -n "$staging" ] && [ -d "$staging/images" ]; then
  ls -A -- "$staging/images" > "$staging/moved"
  for file in "$staging"/images/*; do
    [ -e "$file" ] || continue
    mv -f -- "$file" "$ss/images/"
  done
fi
mv -f -- "$next/images.json" "$ss/streams/v1/images.json"
mv -f -- "$next/index.json" "$ss/streams/v1/index.json"
now=$(date +%s)
for path; do printf '%s %s\\n' "$now" "$path" >> "$ss/.lxc-publish/retired"; done`;

export interface CommitOptions {
  paths: RegistryPaths;
  lock: HeldLock;
  index: ImagesIndex;
  /** Staging tree whose images/ holds the new files, if any. */
  staging?: string;
  /** Files the new index no longer names (kept for a while, then removed). */
  retired: string[];
}

export async function commit(session: RemoteSession, options: CommitOptions): Promise<void> {
  // One round trip: images.json goes over stdin, the (small) index.json as an argument.
  const retired = options.retired.filter((path) => /^images\/[A-Za-z0-9._-]+$/.test(path));
  await session.run(
    commandLine([
      'sh',
      '-c',
      COMMIT_SCRIPT,
      'lxc-publish-commit',
      options.paths.simplestreamsDir,
      nextDir(options.paths),
      options.staging ?? '',
      String(options.lock.pid),
      JSON.stringify(buildStreamsIndex(options.index)),
      ...retired,
    ]),
    `Publishing the new index in ${options.paths.simplestreamsDir} (simplestreams-dir)`,
    Readable.from([JSON.stringify(options.index)]),
    SHORT_COMMAND_TIMEOUT_SECONDS,
  );
}

// ---------------------------------------------------------------------------------------------
// Housekeeping, under the registry lock

/**
 * Removes what runs that died left behind: staging trees whose image is no longer being worked
 * on (its upload lock is free), with any file they had moved into images/ that no index names;
 * upload directories untouched for a day; files of replaced versions past their grace time.
 */
const HOUSEKEEPING_SCRIPT = `set -u
ss=$1 up=$2 retire_grace=$3 upload_grace_minutes=$4; shift 4
state=$ss/.lxc-publish
live=$ss/streams/v1/images.json
now=$(date +%s)
named() { [ -f "$live" ] && grep -qF "\\"$1\\"" "$live"; }
for dir in "$state"/staging/*/; do
  [ -d "$dir" ] || continue
  dir=\${dir%/}; fp=\${dir##*/}
  if [ -d "$up/$fp" ] && ! flock -n "$up/$fp/.lock" true; then continue; fi
  if [ -f "$dir/moved" ]; then
    while IFS= read -r name; do
      named "images/$name" || rm -f -- "$ss/images/$name"
    done < "$dir/moved"
  fi
  rm -rf -- "$dir"
done
if [ -d "$up" ]; then
  find "$up" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{64}' \\
    -mmin +"$upload_grace_minutes" -print | while IFS= read -r dir; do
    flock -n "$dir/.lock" rm -rf -- "$dir" || true
  done
fi
if [ -f "$state/retired" ]; then
  : > "$state/retired.next"
  while read -r when path; do
    case $path in images/*/*|*..*) continue ;; images/?*) ;; *) continue ;; esac
    named "$path" && continue
    if [ $((now - when)) -ge "$retire_grace" ]; then
      rm -f -- "$ss/$path"
    else
      printf '%s %s\\n' "$when" "$path" >> "$state/retired.next"
    fi
  done < "$state/retired"
  mv -f -- "$state/retired.next" "$state/retired"
fi
# This run's own upload and staging directories, done with.
[ $# -gt 0 ] && rm -rf -- "$@"
exec cat -- "$live"`;

/**
 * Cleans up after earlier runs and removes `done` (this run's own directories), then returns the
 * live index as it now stands: one round trip, under the registry lock.
 */
export async function housekeepAndRead(
  session: RemoteSession,
  paths: RegistryPaths,
  done: string[] = [],
): Promise<ImagesIndex> {
  const output = await session.run(
    commandLine([
      'sh',
      '-c',
      HOUSEKEEPING_SCRIPT,
      'lxc-publish-housekeeping',
      paths.simplestreamsDir,
      paths.uploadDir,
      String(RETIRE_GRACE_SECONDS),
      String(UPLOAD_GRACE_SECONDS / 60),
      ...done,
    ]),
    'Cleaning up after earlier runs and reading the index back',
    undefined,
    SHORT_COMMAND_TIMEOUT_SECONDS,
  );
  return parseIndexText(output, posix.join(paths.simplestreamsDir, 'streams/v1/images.json'));
}

export async function removeDirs(session: RemoteSession, dirs: string[]): Promise<void> {
  await session.run(
    commandLine(['rm', '-rf', '--', ...dirs]),
    `Removing ${dirs.join(', ')}`,
    undefined,
    SHORT_COMMAND_TIMEOUT_SECONDS,
  );
}
