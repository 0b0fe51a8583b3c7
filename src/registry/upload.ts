/**
 * The upload: each image's files go into its own directory under upload-dir, under that image's
 * lock, as `.partial` files that get their final name once every block is there (registry/
 * server/write.sh). The files are read once, in order, and hashed as they go (the
 * fingerprint); their blocks are dealt to several exec channels of the one connection, each of
 * which writes its blocks at their offsets on the server. One channel is bound by its window
 * (sshd grants 2 MiB: 40 MB/s at 50 ms round trip, 13 MB/s at 150 ms); several are not.
 *
 * What an earlier attempt left is reused (a complete file whose sha256 matches) or resumed (the
 * blocks the server recorded, once their bytes match the runner's); a dropped connection is
 * retried.
 */
import * as log from '../common/log.js';
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActionError, describeError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { hashFileInto, UploadHashes } from '../image/hashing.js';
import { changedError, readStream } from '../image/local-file.js';
import type { LocalFile } from '../image/local-image.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { isOpenRefusal, type CommandResult, type OpenCommand } from '../ssh/session.js';
import { scriptCommand } from '../ssh/shell.js';
import { imageLockPath, type RemoteImage, type UploadFile } from './layout.js';
import { fenceArgs, fencedOutput, holdLock, IMAGE_LEASE_SECONDS, leaseLost, type HeldLock } from './lock.js';
import type { Turn } from '../common/together.js';
import { formatProgress } from './progress.js';
import type { Registry } from './registry.js';
import { IMAGE_LOCK, RESET_UPLOAD, WRITE_BLOCKS } from './scripts.js';
import type { SharedReadsMember } from './shared-reads.js';

export interface UploadOptions {
  /** Seconds to wait for the image's lock (lock-timeout). */
  lockTimeout: number;
  /** How often a dropped connection is retried (retries). */
  retries: number;
  /** Parallel channels at most (default UPLOAD_CHANNELS; scripts/upload-paths.ts varies it). */
  channels?: number;
  /** Bytes per block (default BLOCK_BYTES; scripts/upload-paths.ts varies it). */
  blockBytes?: number;
  /** The image lock's lease in seconds (default IMAGE_LEASE_SECONDS; a test shortens it). */
  leaseSeconds?: number;
  /** Reads shared with the uploads of the same image to other servers (a fleet): the first attempt reads through them. */
  sharedReads?: SharedReadsMember;
  /**
   * A fleet's turn to take this server's image lock: awaited before the first attempt takes it,
   * and ended once that attempt holds it or gave up, so that runs take the locks of the servers
   * they share in one order and never each hold one the other waits for.
   */
  lockTurn?: Turn;
}

export interface Upload {
  fingerprint: string;
  /** The sha256 of each file, in the image's order: what the server's staged copies must hash to. */
  fileSha256s: string[];
  /** The image's upload lock: held until the publication is done (it marks the staging tree as in use). */
  lock: HeldLock;
}

/** How the messages name an image's lock. */
export const IMAGE_LOCK_NAME = "image's upload lock";

/**
 * Channels at most, on a link whose round trip is LONG_LINK_MS or more. sshd's MaxSessions (10 by default) counts every channel of a connection, the
 * image lock's holder among them; 8 lift the window's ceiling eightfold (docs/performance.md has
 * the measurements). A server that allows fewer refuses the rest, and the upload goes on with
 * those it got.
 */
const UPLOAD_CHANNELS = 8;
/**
 * Below this round trip one channel's window is not the limit (2 MiB per 10 ms is 200 MB/s, what
 * the two ends' CPUs manage on a good day), and more channels only share the CPUs: one is used.
 */
const LONG_LINK_MS = 10;
/** Bytes per block: a channel's unit of work, of resume, and of memory held per channel. */
const BLOCK_BYTES = 4 * 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

/** A byte range of a file: [offset, offset + length). */
interface Range {
  offset: number;
  length: number;
}

/** What the server holds of a file (IMAGE_LOCK's report). */
interface RemoteFileState {
  complete?: { size: number; sha256: string };
  /** Blocks recorded in the partial file, sorted, and the sha256 of their bytes in that order. */
  blocks: Range[];
  blocksSha256?: string;
}

const DIGITS = /^\d{1,15}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** Reads IMAGE_LOCK's report; lines of another form (a login shell's noise) are ignored. */
export function parseUploadReport(lines: readonly string[], files: number): RemoteFileState[] {
  const states: RemoteFileState[] = Array.from({ length: files }, () => ({ blocks: [] }));
  for (const line of lines) {
    const [kind, n, a, b] = line.split(' ');
    if (!n || !DIGITS.test(n)) continue;
    const state = states[Number(n) - 1];
    if (!state) continue;
    if (kind === 'F' && a && b && DIGITS.test(a) && SHA256.test(b)) state.complete = { size: Number(a), sha256: b };
    else if (kind === 'B' && a && b && DIGITS.test(a) && DIGITS.test(b))
      state.blocks.push({ offset: Number(a), length: Number(b) });
    else if (kind === 'H' && a && SHA256.test(a)) state.blocksSha256 = a;
  }
  return states;
}

/** Whether recorded blocks are usable for a file of `size` bytes: inside it, none overlapping. */
function blocksFit(blocks: readonly Range[], size: number): boolean {
  let end = 0;
  for (const block of blocks) {
    if (block.length <= 0 || block.offset < end || block.offset + block.length > size) return false;
    end = block.offset + block.length;
  }
  return true;
}

/** The ranges of a file of `size` bytes that `done` (sorted, not overlapping) leaves out, cut into blocks. */
export function missingBlocks(done: readonly Range[], size: number, blockBytes = BLOCK_BYTES): Range[] {
  const missing: Range[] = [];
  const add = (from: number, to: number): void => {
    for (let offset = from; offset < to; offset += blockBytes)
      missing.push({ offset, length: Math.min(blockBytes, to - offset) });
  };
  let at = 0;
  for (const block of done) {
    add(at, block.offset);
    at = block.offset + block.length;
  }
  add(at, size);
  return missing;
}

/** sha256 of the given ranges of a local file, in order (what the server hashed of its blocks). */
async function hashRanges(file: LocalFile, ranges: readonly Range[]): Promise<string> {
  const hash = createHash('sha256');
  for (const range of ranges) {
    const stream = readStream(file, {
      start: range.offset,
      end: range.offset + range.length - 1,
      chunkBytes: READ_CHUNK_BYTES,
    });
    for await (const chunk of stream) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** What to do with one file in this attempt. */
interface FilePlan {
  index: number;
  file: UploadFile;
  /** Blocks to send (all of the file for a fresh upload). */
  send: Range[];
}

/**
 * Decides, file by file, what to reuse and what to send, from what the server reported. A
 * complete file is reused when its sha256 matches; recorded blocks are kept when their bytes
 * match the runner's (checked by hash, as the server read them back); anything else starts again.
 */
async function planFiles(
  registry: Registry,
  image: RemoteImage,
  lock: HeldLock,
  states: RemoteFileState[],
  hashes: UploadHashes,
  options: UploadOptions,
): Promise<FilePlan[]> {
  const { lockTimeout, blockBytes = BLOCK_BYTES } = options;
  const plans: FilePlan[] = [];
  for (const [index, file] of image.files.entries()) {
    const state = states[index] ?? { blocks: [] };
    const size = file.local.size;
    if (state.complete) {
      // A file of another size is not this one: no need to read it to know.
      if (state.complete.size === size) {
        const own = createHash('sha256');
        const fingerprint = hashes.before(index);
        await hashFileInto(file.local, [own, fingerprint]);
        const sha256 = own.digest('hex');
        if (state.complete.sha256 === sha256) {
          hashes.finish(index, fingerprint, sha256);
          log.info(`${file.name}: already on the server from an earlier run (sha256 matches); not sent again`);
          continue;
        }
      }
    } else if (state.blocks.length > 0 && blocksFit(state.blocks, size) && state.blocksSha256) {
      if ((await hashRanges(file.local, state.blocks)) === state.blocksSha256) {
        const held = state.blocks.reduce((sum, block) => sum + block.length, 0);
        if (held > 0) log.info(`${file.name}: resuming; ${held} of ${size} bytes are already on the server`);
        plans.push({ index, file, send: missingBlocks(state.blocks, size, blockBytes) });
        continue;
      }
    } else if (state.blocks.length === 0 && state.blocksSha256 === undefined) {
      // A fresh, empty partial file and block list (N): everything is sent. A block list with
      // nothing valid in it is reset below, so that no stray line is left for the final check.
      plans.push({ index, file, send: missingBlocks([], size, blockBytes) });
      continue;
    }
    // What the server holds does not match: that file starts again.
    const what = `Starting the upload of ${file.name} again`;
    const reset = await registry.execScript(RESET_UPLOAD, [
      ...fenceArgs(lock.fence),
      image.dir,
      String(lockTimeout),
      file.name,
    ]);
    fencedOutput(reset, lock, what, IMAGE_LOCK_NAME);
    log.info(`${file.name}: what the server held does not match this file; it is sent again`);
    plans.push({ index, file, send: missingBlocks([], size, blockBytes) });
  }
  return plans;
}

/** One writer: its channel, how it ended, and the bytes it was given. */
interface Writer {
  command: OpenCommand;
  /** Settles when the channel closed; a failure is kept for after the sending. */
  result: Promise<CommandResult>;
  ended: boolean;
}

/**
 * Opens up to `count` writers at once (one round trip). A server with a lower MaxSessions refuses
 * some: the upload goes on with those it got, with a notice.
 */
async function openWriters(registry: Registry, image: RemoteImage, lock: HeldLock, count: number, lockTimeout: number) {
  const command = scriptCommand(WRITE_BLOCKS.text, WRITE_BLOCKS.name, [
    ...fenceArgs(lock.fence),
    image.dir,
    String(lockTimeout),
    ...image.files.map((file) => file.name),
  ]);
  const opened = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => registry.session.open(command, i > 0)),
  );
  const writers: Writer[] = [];
  let refusal: unknown;
  for (const outcome of opened) {
    if (outcome.status === 'fulfilled') {
      const writer: Writer = { command: outcome.value, result: outcome.value.ended, ended: false };
      void writer.result.then(() => (writer.ended = true));
      writers.push(writer);
    } else if (isOpenRefusal(outcome.reason)) refusal = outcome.reason;
    else throw outcome.reason;
  }
  if (writers.length === 0) {
    throw new ActionError(
      `The server refused every upload channel (${untrustedLine(describeError(refusal))}). Its sshd allows too few channels per ` +
        'connection (MaxSessions): the upload needs two (the image lock and one writer). Set MaxSessions to 2 or ' +
        "more in the server's sshd_config (the default is 10) and reload sshd.",
    );
  }
  if (writers.length < count) {
    registry.sessionsLimited = true;
    log.notice(
      `The server accepted ${writers.length} of ${count} parallel upload channels (${untrustedLine(describeError(refusal))}); ` +
        `uploading over ${writers.length}. Its sshd limits channels per connection (MaxSessions, 10 by default): ` +
        'a higher MaxSessions for the publishing user lets long links go faster.',
    );
  }
  return writers;
}

/** A writer failed: its own exit status and stderr say why. */
async function writerFailure(writer: Writer): Promise<Error> {
  const result = await writer.result;
  return new ActionError(remoteFailure('Uploading (a parallel writer)', result));
}

/** Waits until the channel can take more, or fails when its command ended. */
async function drained(writer: Writer): Promise<void> {
  const channel = writer.command.stdin;
  if (writer.ended || !channel.writable) throw await writerFailure(writer);
  if (channel.writableNeedDrain) await Promise.race([once(channel, 'drain'), writer.result.then(() => undefined)]);
  if (writer.ended) throw await writerFailure(writer);
}

/**
 * The writer for the next block: of those whose channel is not full (it has less than its
 * high-water mark, 2 MiB, waiting for the window), the one with the least waiting; when all are
 * full, the first to drain. Back-pressure: at most about a block and 2 MiB wait per channel,
 * whatever the file size.
 */
async function pickWriter(writers: Writer[]): Promise<Writer> {
  for (;;) {
    let best: Writer | undefined;
    for (const writer of writers) {
      if (writer.ended) throw await writerFailure(writer);
      const channel = writer.command.stdin;
      if (channel.writableNeedDrain) continue;
      if (!best || channel.writableLength < best.command.stdin.writableLength) best = writer;
    }
    if (best) return best;
    await Promise.race(writers.map((writer) => drained(writer)));
  }
}

interface Progress {
  bytes: number;
  total: number;
  started: number;
  label: string;
}

/**
 * Reads each planned file once, in order, feeding the fingerprint, and deals the blocks to send
 * to the writers as framed blocks. Files reused from the server are hashed by planFiles. With
 * `shared`, the bytes come from the one read the uploads to other servers share.
 */
async function sendPlanned(
  image: RemoteImage,
  plans: FilePlan[],
  writers: Writer[],
  hashes: UploadHashes,
  progress: Progress,
  shared?: SharedReadsMember,
): Promise<void> {
  for (const [index, file] of image.files.entries()) {
    const plan = plans.find((candidate) => candidate.index === index);
    if (!plan) {
      shared?.skip(index);
      continue; // reused
    }
    progress.label = file.name;
    const fingerprint: Hash = hashes.before(index);
    const own = createHash('sha256');
    const blocks = plan.send;
    let next = 0; // the next block to start
    let current: { block: Range; writer: Writer } | undefined;
    let position = 0;
    const source = shared?.read(index) ?? readStream(file.local, { chunkBytes: READ_CHUNK_BYTES });
    for await (const read of source) {
      const chunk = read as Buffer;
      fingerprint.update(chunk);
      own.update(chunk);
      let at = 0;
      while (at < chunk.length) {
        const here = position + at;
        if (!current) {
          const block = blocks[next];
          if (!block || block.offset >= position + chunk.length) break; // nothing more to send in this chunk
          if (block.offset > here) {
            at = block.offset - position;
            continue;
          }
          next++;
          current = { block, writer: await pickWriter(writers) };
          current.writer.command.stdin.write(`B ${index + 1} ${block.offset} ${block.length}\n`);
        }
        const end = current.block.offset + current.block.length;
        const take = Math.min(chunk.length - at, end - here);
        current.writer.command.stdin.write(chunk.subarray(at, at + take));
        at += take;
        progress.bytes += take;
        if (here + take === end) {
          current.writer.command.stdin.write('.\n');
          current = undefined;
        }
      }
      position += chunk.length;
    }
    if (position !== file.local.size || current || next < blocks.length) {
      // readStream stops at the size seen when the file was opened and fails when it ends sooner.
      throw changedError(file.local, `${position} of ${file.local.size} bytes read in the upload`);
    }
    hashes.finish(index, fingerprint, own.digest('hex'));
  }
}

/** Ends a writer's stdin and checks that it ended well. */
async function finishWriter(writer: Writer, frames = ''): Promise<void> {
  const channel = writer.command.stdin;
  if (!writer.ended && channel.writable) channel.end(frames);
  const result = await writer.result;
  if (result.code !== 0) throw new ActionError(remoteFailure('Uploading', result));
}

/**
 * One attempt: the writers receive the blocks to send; once all but the first have ended, the
 * first checks each file's blocks and gives it its final name (the "E" frames).
 */
async function transfer(
  registry: Registry,
  image: RemoteImage,
  lock: HeldLock,
  plans: FilePlan[],
  hashes: UploadHashes,
  options: UploadOptions,
): Promise<void> {
  const toSend = plans.reduce((sum, plan) => sum + plan.send.reduce((bytes, block) => bytes + block.length, 0), 0);
  const blockCount = plans.reduce((sum, plan) => sum + plan.send.length, 0);
  const rtt = registry.roundTripMs;
  const channels = options.channels ?? (rtt !== undefined && rtt < LONG_LINK_MS ? 1 : UPLOAD_CHANNELS);
  const wanted = Math.max(1, Math.min(channels, blockCount));
  if (rtt !== undefined && options.channels === undefined) {
    log.info(`Round trip about ${rtt.toFixed(0)} ms: up to ${channels} channel${channels === 1 ? '' : 's'}`);
  }
  const writers = await openWriters(registry, image, lock, wanted, options.lockTimeout);
  const progress: Progress = { bytes: 0, total: toSend, started: Date.now(), label: image.files[0]?.name ?? '' };
  const report = (): string =>
    formatProgress({
      label: `${progress.label} (${writers.length} channel${writers.length === 1 ? '' : 's'})`,
      sent: progress.bytes,
      total: progress.total,
      elapsedSeconds: (Date.now() - progress.started) / 1000,
    });
  const timer = setInterval(() => log.info(report()), 5000);
  try {
    await sendPlanned(image, plans, writers, hashes, progress, options.sharedReads);
    const [first, ...others] = writers as [Writer, ...Writer[]];
    await Promise.all(others.map((writer) => finishWriter(writer)));
    await finishWriter(first, plans.map((plan) => `E ${plan.index + 1} ${plan.file.local.size}\n`).join(''));
  } catch (error) {
    for (const writer of writers) writer.command.stdin.destroy();
    throw error;
  } finally {
    clearInterval(timer);
  }
  const seconds = (Date.now() - progress.started) / 1000;
  for (const plan of plans) {
    const sent = plan.send.reduce((bytes, block) => bytes + block.length, 0);
    log.info(
      formatProgress({
        label: plan.file.name,
        sent: plan.file.local.size,
        sentThisPass: sent,
        total: plan.file.local.size,
        elapsedSeconds: seconds * (toSend > 0 ? sent / toSend : 0),
      }),
    );
  }
  log.info(
    `Uploaded ${(toSend / 1e6).toFixed(1)} MB over ${writers.length} channel${writers.length === 1 ? '' : 's'} in ` +
      `${seconds.toFixed(2)} s (${seconds > 0 ? (toSend / 1e6 / seconds).toFixed(1) : '-'} MB/s)`,
  );
}

/**
 * Uploads under the image's own lock, retrying when the connection drops, and returns the
 * fingerprint with the lock, which stays held until the publication is done.
 */
export async function uploadImage(registry: Registry, image: RemoteImage, options: UploadOptions): Promise<Upload> {
  const hashes = new UploadHashes();
  for (let attempt = 0; ; attempt++) {
    let lock: HeldLock | undefined;
    try {
      // Inside the retried part: a reconnect that fails (the link still down) is one attempt.
      if (attempt > 0 && !registry.isConnected()) await registry.reconnect();
      // One round trip: the lock, and what earlier attempts left in the upload directory.
      if (attempt === 0) await options.lockTurn?.wait();
      lock = await holdLock(registry, {
        path: imageLockPath(registry.paths, image.key),
        timeoutSeconds: options.lockTimeout,
        leaseSeconds: options.leaseSeconds ?? IMAGE_LEASE_SECONDS,
        busyMessage:
          `Another run has been publishing this same image (upload key ${image.key}) for more than ` +
          `${options.lockTimeout} seconds (lock-timeout). Try again when it is done.`,
        script: IMAGE_LOCK,
        args: [image.dir, ...image.files.map((file) => file.name)],
      });
      options.lockTurn?.end();
      const states = parseUploadReport(lock.report, image.files.length);
      const plans = await planFiles(registry, image, lock, states, hashes, options);
      if (plans.length > 0) await transfer(registry, image, lock, plans, hashes, options);
      options.sharedReads?.leave();
      return { fingerprint: hashes.fingerprint(), fileSha256s: hashes.fileSha256s(), lock };
    } catch (error) {
      // The other servers' uploads go on without this one; a retry reads the files itself.
      options.lockTurn?.end();
      options.sharedReads?.leave();
      // A lease the server let go: another run of this image may have taken over (and stopped
      // this run's writers); what it does must not be undone by this one.
      const lost = lock?.lost() === true;
      await lock?.release().catch(() => undefined);
      if (lost && lock && registry.isConnected()) throw leaseLost(lock, 'The upload', IMAGE_LOCK_NAME);
      if (registry.isConnected() || attempt >= options.retries) throw error;
      const delay = Math.min(30, 2 ** attempt);
      log.warning(
        `The connection dropped during the upload, or could not be made again ` +
          `(${untrustedLine(describeError(error))}). Retrying in ${delay} s (retry ${attempt + 1} of ` +
          `${options.retries}); the upload resumes where it stopped.`,
      );
      await sleep(delay * 1000);
    }
  }
}
