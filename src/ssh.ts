/**
 * The SSH session: connecting with a pinned (or reported) host key, running quoted commands with
 * their exit status checked, and streaming files to the server.
 */
import * as core from '@actions/core';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel, ServerHostKeyAlgorithm } from 'ssh2';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { ActionError, describeError } from './errors.js';
import { describePresentedKey, hasPins, hostKeyAllowed, type HostKeyPins, type PresentedHostKey } from './hostkeys.js';

export interface ConnectOptions {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  passphrase: string;
  hostKeyPins: HostKeyPins;
  /** Refuse a server whose host key is not pinned (instead of warning). */
  strictHostKey?: boolean;
  /** Seconds to wait for the TCP connection and SSH handshake. */
  connectTimeout?: number;
}

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
  /** Set when the command was stopped for running longer than this many seconds. */
  timedOutAfter?: number;
}

/** How long bookkeeping commands (reading the index, renames, clean-up) may take. */
export const SHORT_COMMAND_TIMEOUT_SECONDS = 300;

export interface HeldCommand {
  firstLine: string;
  release(): Promise<void>;
}

/** A held command ended before printing its first line; `result` says how. */
export class HeldCommandEnded extends Error {
  constructor(readonly result: CommandResult) {
    super(remoteFailure('A held command', result));
    this.name = 'HeldCommandEnded';
  }
}

/** ssh2 algorithm names for each host key type that known_hosts and ssh-keygen name. */
const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/**
 * The host key algorithm lists to offer, one per connection attempt (undefined: ssh2's defaults).
 * known-hosts pins: only their types, once. Fingerprints only: the defaults first, then each type.
 */
export function hostKeyAlgorithmAttempts(pins: HostKeyPins): (string[] | undefined)[] {
  const knownTypes = [...new Set(pins.knownKeys.filter((key) => !key.revoked).map((key) => key.type))];
  if (knownTypes.length > 0 && pins.fingerprints.length === 0) {
    return [knownTypes.flatMap((type) => HOST_KEY_ALGORITHMS[type] ?? [type])];
  }
  if (pins.fingerprints.length === 0) return [undefined];
  const ecdsa = Object.entries(HOST_KEY_ALGORITHMS)
    .filter(([type]) => type.startsWith('ecdsa-'))
    .flatMap(([, names]) => names);
  return [undefined, HOST_KEY_ALGORITHMS['ssh-ed25519'], ecdsa, HOST_KEY_ALGORITHMS['ssh-rsa']] as (
    string[] | undefined
  )[];
}

/** Whether an attempt would only ask again for a key type the server already presented. */
function alreadyPresented(algorithms: string[] | undefined, presented: PresentedHostKey[]): boolean {
  if (!algorithms) return false;
  return presented.some((key) => (HOST_KEY_ALGORITHMS[key.type] ?? []).some((name) => algorithms.includes(name)));
}

type Attempt =
  | { kind: 'connected'; ssh: NodeSSH; presented: PresentedHostKey }
  | { kind: 'mismatch' | 'unpinned'; presented: PresentedHostKey }
  | { kind: 'unsupported' };

/** One connection attempt offering `algorithms` as host key types. */
async function attemptConnection(options: ConnectOptions, algorithms: string[] | undefined): Promise<Attempt> {
  const ssh = new NodeSSH();
  const pinned = hasPins(options.hostKeyPins);
  let presented: PresentedHostKey | undefined;
  let verdict: 'mismatch' | 'unpinned' | undefined;
  // Nagle's algorithm holds back the small packets of each request and answer: on a socket of
  // our own it is off from the first byte, which makes every command's round trip (and the
  // handshake's) tens of milliseconds shorter.
  const sock = net.connect({ host: options.host, port: options.port });
  sock.setNoDelay(true);
  try {
    await ssh.connect({
      sock,
      host: options.host,
      port: options.port,
      username: options.username,
      privateKey: options.privateKey,
      ...(options.passphrase === '' ? {} : { passphrase: options.passphrase }),
      readyTimeout: (options.connectTimeout ?? 30) * 1000,
      keepaliveInterval: 15000,
      keepaliveCountMax: 4,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms as ServerHostKeyAlgorithm[] } } : {}),
      hostVerifier: (key: Buffer): boolean => {
        presented = describePresentedKey(key);
        if (pinned && !hostKeyAllowed(options.hostKeyPins, key)) verdict = 'mismatch';
        else if (!pinned && options.strictHostKey) verdict = 'unpinned';
        return verdict === undefined;
      },
    });
  } catch (error) {
    ssh.dispose();
    sock.destroy();
    if (verdict && presented) return { kind: verdict, presented };
    if (algorithms && /no matching host ?key/i.test(describeError(error))) return { kind: 'unsupported' };
    throw connectionError(error, options);
  }
  if (!presented) {
    ssh.dispose();
    throw new ActionError(`The server ${options.host} presented no host key; it cannot be verified.`, 'host');
  }
  return { kind: 'connected', ssh, presented };
}

/** A command's channel, with its output, exit status and end collected from the start. */
class RunningCommand {
  readonly stdout: Buffer[] = [];
  private stderr = '';
  private code: number | null = null;
  private signal: string | null = null;
  private readonly stdoutListeners: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(readonly channel: ClientChannel) {
    channel.on('data', (chunk: Buffer) => {
      this.stdout.push(chunk);
      for (const listener of this.stdoutListeners) listener();
    });
    channel.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-64 * 1024);
    });
    channel.on('exit', (code: number | null, signal?: string) => {
      this.code = code ?? null;
      this.signal = signal ?? null;
    });
    this.closed = new Promise((resolve) => channel.on('close', () => resolve()));
  }

  onStdout(listener: () => void): void {
    this.stdoutListeners.push(listener);
  }

  result(): CommandResult {
    return { code: this.code, signal: this.signal, stdout: Buffer.concat(this.stdout), stderr: this.stderr };
  }
}

/** Keeps only the end of a long stderr, which is where tools say what went wrong. */
function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export class RemoteSession {
  private closed = false;

  private constructor(
    private readonly ssh: NodeSSH,
    readonly hostKey: PresentedHostKey,
  ) {
    // Without a listener, a reset connection would be an unhandled 'error' event and end the
    // process; here it only marks the session as gone, and the command in flight fails.
    ssh.connection?.on('error', () => {
      this.closed = true;
    });
    ssh.connection?.on('close', () => {
      this.closed = true;
    });
  }

  /** Whether the connection is still up (false once the server or the network dropped it). */
  isConnected(): boolean {
    return !this.closed && this.ssh.isConnected();
  }

  /**
   * Connects and authenticates; on a host key mismatch, stops before anything is sent. Only the
   * pinned key types are offered when known-hosts names them. With fingerprints alone the types
   * are not known: when the server presents a key of another type than the pinned one (it may
   * hold several), each other type is asked for in turn.
   */
  static async connect(options: ConnectOptions): Promise<RemoteSession> {
    const pinned = hasPins(options.hostKeyPins);
    const presentedKeys: PresentedHostKey[] = [];
    for (const algorithms of hostKeyAlgorithmAttempts(options.hostKeyPins)) {
      if (alreadyPresented(algorithms, presentedKeys)) continue;
      const attempt = await attemptConnection(options, algorithms);
      if (attempt.kind === 'connected') {
        if (!pinned) {
          const { type, fingerprint } = attempt.presented;
          core.warning(
            `The host key of ${options.host}:${options.port} was not verified. It presented ${type} ${fingerprint}. ` +
              `Pin it: add "host-fingerprint: ${fingerprint}" to the step (after checking it on the server with ` +
              '`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), or set strict-host-key: true to refuse unpinned hosts.',
            { title: 'Host key not pinned' },
          );
        } else {
          core.info(`Host key verified: ${attempt.presented.type} ${attempt.presented.fingerprint}`);
        }
        return new RemoteSession(attempt.ssh, attempt.presented);
      }
      if (attempt.kind === 'unpinned') {
        throw new ActionError(
          `The host key of ${options.host}:${options.port} cannot be verified: strict-host-key is true and neither ` +
            `host-fingerprint nor known-hosts is set. The server presented ${attempt.presented.type} ` +
            `${attempt.presented.fingerprint}; after checking it on the server, set host-fingerprint: ${attempt.presented.fingerprint}.`,
          'host-fingerprint',
        );
      }
      if (attempt.kind === 'mismatch') presentedKeys.push(attempt.presented);
      // 'unsupported': the server holds no key of the types asked for; try the next.
    }
    throw hostKeyMismatch(options, presentedKeys);
  }

  /**
   * Opens an exec channel. Its listeners are attached inside ssh2's callback, synchronously: a
   * fast command's output, exit status and close can arrive in the same read as the channel's
   * confirmation, and would be missed by listeners attached a tick later.
   */
  private start(command: string): Promise<RunningCommand> {
    const connection = this.ssh.connection;
    if (!connection || this.closed) return Promise.reject(new Error('the SSH connection is closed'));
    return new Promise((resolve, reject) => {
      connection.exec(command, (error, channel) => (error ? reject(error) : resolve(new RunningCommand(channel))));
    });
  }

  /**
   * Runs a command (built with shell.ts) and collects its output. `stdin`, when given, is streamed
   * to the command with back-pressure, so large files pass through without being held in memory.
   */
  async exec(command: string, stdin?: Readable, timeoutSeconds = 0): Promise<CommandResult> {
    const running = await this.start(command);
    if (timeoutSeconds <= 0) return this.finish(running, stdin);
    let timer: NodeJS.Timeout | undefined;
    // sshd does not end a command when its channel is closed, and may ignore signals: the run
    // goes on without waiting for it (the connection's end, at the latest, closes its pipes).
    const timedOut = new Promise<CommandResult>((resolve) => {
      timer = setTimeout(() => {
        running.channel.signal('KILL');
        running.channel.close();
        resolve({ ...running.result(), timedOutAfter: timeoutSeconds });
      }, timeoutSeconds * 1000);
    });
    const finishing = this.finish(running, stdin);
    finishing.catch(() => undefined); // after a timeout nobody waits for it; its failure is moot
    try {
      return await Promise.race([finishing, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async finish(running: RunningCommand, stdin?: Readable): Promise<CommandResult> {
    if (stdin) {
      try {
        await pipeline(stdin, running.channel);
      } catch (error) {
        running.channel.close();
        await running.closed;
        // A command that failed early (a full disk, a directory it cannot write) closes its side
        // first: its exit status and stderr say more than the broken pipe does.
        const result = running.result();
        if (result.code === null || result.code === 0) throw error;
        return result;
      }
    } else {
      running.channel.end();
    }
    await running.closed;
    return running.result();
  }

  /**
   * Starts a command that keeps running until released, and resolves once it has printed its
   * first line (for example a lock holder announcing that it holds the lock). Releasing closes
   * its stdin; a dropped connection does the same on the server side.
   */
  async startHeld(command: string): Promise<HeldCommand> {
    const running = await this.start(command);
    const firstLine = await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const text = Buffer.concat(running.stdout).toString('utf8');
        const end = text.indexOf('\n');
        if (end >= 0) resolve(text.slice(0, end));
      };
      running.onStdout(check);
      check();
      void running.closed.then(() => reject(new HeldCommandEnded(running.result())));
    });
    return {
      firstLine,
      release: async (): Promise<void> => {
        running.channel.end();
        await running.closed;
      },
    };
  }

  /** Runs a command and fails with its stderr unless it exits with status 0. */
  async run(command: string, what: string, stdin?: Readable, timeoutSeconds = 0): Promise<Buffer> {
    const result = await this.exec(command, stdin, timeoutSeconds);
    if (result.code !== 0) {
      throw new ActionError(remoteFailure(what, result));
    }
    return result.stdout;
  }

  dispose(): void {
    this.ssh.dispose();
  }
}

export function remoteFailure(what: string, result: CommandResult): string {
  const status =
    result.timedOutAfter !== undefined
      ? `did not finish within ${result.timedOutAfter} seconds and was stopped`
      : result.signal !== null
        ? `was killed by signal ${result.signal}`
        : result.code === null
          ? 'ended without an exit status'
          : `exited with status ${result.code}`;
  const stderr = tail(result.stderr);
  return `${what} failed on the server: it ${status}.${stderr ? `\n${stderr}` : ''}${hintFor(stderr, result.code)}`;
}

/** Hints for the usual causes of a failing remote step. */
function hintFor(stderr: string, code: number | null): string {
  if (/No space left on device/i.test(stderr)) {
    return "\nHint: the server's disk is full. Free space in upload-dir and simplestreams-dir.";
  }
  if (/Permission denied/i.test(stderr)) {
    return "\nHint: the SSH user cannot write there. Give it ownership of upload-dir and simplestreams-dir (see the README's server setup).";
  }
  if (/can't cd|cd: .*(No such file|not found)/i.test(stderr)) {
    return "\nHint: the directory does not exist on the server. Check upload-dir and simplestreams-dir, or create them (see the README's server setup).";
  }
  const missing = /([\w.+-]+): (?:command )?not found/i.exec(stderr)?.[1];
  if (code === 127 || missing) {
    if (missing === undefined || missing === 'incus-simplestreams') {
      return '\nHint: incus-simplestreams is not installed on the server. Install the incus-extra package (Debian bookworm-backports, Ubuntu 24.04).';
    }
    if (missing === 'flock') return '\nHint: flock is not installed on the server. Install util-linux.';
    return `\nHint: ${missing} is not installed on the server, or not on the SSH user's PATH.`;
  }
  return '';
}

function hostKeyMismatch(options: ConnectOptions, presented: PresentedHostKey[]): ActionError {
  const input = options.hostKeyPins.fingerprints.length > 0 ? 'host-fingerprint' : 'known-hosts';
  const keys = presented.map((key) => `${key.type} ${key.fingerprint}`).join(', ') || 'no key of the pinned types';
  return new ActionError(
    `Host key verification failed for ${options.host}:${options.port}: the server presented ${keys}, which ` +
      `${input} does not allow. Nothing was uploaded. If the server's key was changed on purpose, update ` +
      `${input}; otherwise someone may be intercepting the connection.`,
    input,
  );
}

function connectionError(error: unknown, options: ConnectOptions): ActionError {
  const message = describeError(error);
  const target = `${options.host}:${options.port}`;
  const code = (error as { code?: string }).code;
  if (code === 'ECONNREFUSED') {
    return new ActionError(
      `Connection to ${target} was refused. Check the host and port inputs, and that sshd runs.`,
      'port',
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ActionError(`The host name "${options.host}" cannot be resolved. Check the host input.`, 'host');
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new ActionError(
      `${target} cannot be reached from the runner. Check the host input and the server's firewall.`,
      'host',
    );
  }
  if (/timed out/i.test(message) || code === 'ETIMEDOUT') {
    return new ActionError(
      `Connecting to ${target} timed out. Check the host and port inputs and that the server accepts SSH from the runner.`,
      'host',
    );
  }
  if (/authentication methods failed/i.test(message)) {
    return new ActionError(
      `The server ${target} refused the key for user "${options.username}". Check the username input and that ` +
        "the key's public half is in that user's ~/.ssh/authorized_keys on the server.",
      'ssh-key',
    );
  }
  return new ActionError(`SSH connection to ${target} failed: ${message}`, 'host');
}
