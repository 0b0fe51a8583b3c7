/**
 * The upload: an SSH connection that is re-opened when it drops, and files sent under the image's
 * own lock, resumed where an earlier attempt stopped, hashed as they go.
 */
import * as core from '@actions/core';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from './errors.js';
import { UploadHashes, hashFileInto } from './image.js';
import type { Settings } from './inputs.js';
import { holdLock, remoteSha256, sendFile, uploadState, type HeldLock, type UploadFile } from './registry.js';
import { RemoteSession } from './ssh.js';

/** The SSH connection, replaced when it drops during the upload. */
export class Connection {
  constructor(
    public session: RemoteSession,
    private readonly settings: Settings,
  ) {}

  async reconnect(): Promise<void> {
    this.session.dispose();
    this.session = await RemoteSession.connect(this.settings);
  }

  dispose(): void {
    this.session.dispose();
  }
}

/**
 * Sends the files that are not already on the server, resuming partial ones, and hashes them as
 * they go: a first upload reads each file once. Reusing or resuming an earlier run's upload
 * reads the part already sent locally, to check it against the server's copy.
 */
async function transferFiles(
  session: RemoteSession,
  dir: string,
  files: UploadFile[],
  timeoutSeconds: number,
  hashes: UploadHashes,
): Promise<void> {
  const states = await uploadState(
    session,
    dir,
    files.map((file) => file.remoteName),
    timeoutSeconds,
  );
  for (const [index, file] of files.entries()) {
    if (hashes.isDone(index)) continue; // sent before the connection dropped
    const remotePath = posix.join(dir, file.remoteName);
    const state = states.get(file.remoteName) ?? { final: -1, partial: -1 };
    if (state.final === file.size) {
      const own = createHash('sha256');
      const fingerprint = hashes.before(index);
      await hashFileInto(file.localPath, [own, fingerprint]);
      if ((await remoteSha256(session, remotePath)) === own.digest('hex')) {
        hashes.finish(index, fingerprint);
        core.info(`${file.remoteName}: already on the server from an earlier run (sha256 matches); not sent again`);
        continue;
      }
    }
    let offset = 0;
    let fingerprint = hashes.before(index);
    if (state.partial > 0 && state.partial <= file.size) {
      const prefix = createHash('sha256');
      const prefixFingerprint = hashes.before(index);
      const [remote] = await Promise.all([
        remoteSha256(session, `${remotePath}.partial`),
        hashFileInto(file.localPath, [prefix, prefixFingerprint], state.partial),
      ]);
      if (remote === prefix.digest('hex')) {
        offset = state.partial;
        fingerprint = prefixFingerprint;
        core.info(`${file.remoteName}: resuming after ${offset} bytes already on the server`);
      }
    }
    // One hash over the bytes as they go: the fingerprint, without a second read of the file.
    await sendFile(session, file, dir, offset, timeoutSeconds, core.info, [fingerprint]);
    hashes.finish(index, fingerprint);
  }
}

/**
 * Uploads under the image's own lock, retrying when the connection drops. Returns the lock,
 * which stays held until the publication is done (it also marks the staging tree as in use).
 */
export async function upload(
  connection: Connection,
  settings: Settings,
  dir: string,
  files: UploadFile[],
  hashes: UploadHashes,
): Promise<HeldLock> {
  for (let attempt = 0; ; attempt++) {
    let lock: HeldLock | undefined;
    try {
      lock = await holdLock(
        connection.session,
        posix.join(dir, '.lock'),
        settings.lockTimeout,
        `Another run has been uploading this same image to ${dir} for more than ` +
          `${settings.lockTimeout} seconds (lock-timeout). Try again when it is done.`,
      );
      await transferFiles(connection.session, dir, files, settings.lockTimeout, hashes);
      return lock;
    } catch (error) {
      await lock?.release().catch(() => undefined);
      if (connection.session.isConnected() || attempt >= settings.retries) throw error;
      const delay = Math.min(30, 2 ** attempt);
      core.warning(
        `The connection dropped during the upload (${describeError(error)}). Retrying in ${delay} s ` +
          `(retry ${attempt + 1} of ${settings.retries}); the upload resumes where it stopped.`,
      );
      await sleep(delay * 1000);
      await connection.reconnect();
    }
  }
}
