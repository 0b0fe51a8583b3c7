/**
 * The SSH session: connecting with a pinned (or reported) host key, running quoted commands with
 * their exit status checked, and streaming files to the server.
 */
import * as core from '@actions/core';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
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
  /** Seconds to wait for the TCP connection and SSH handshake. */
  connectTimeout?: number;
}

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
}

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

  /** Connects and authenticates; on a host key mismatch, stops before anything is sent. */
  static async connect(options: ConnectOptions): Promise<RemoteSession> {
    const ssh = new NodeSSH();
    let presented: PresentedHostKey | undefined;
    let rejected = false;
    try {
      await ssh.connect({
        host: options.host,
        port: options.port,
        username: options.username,
        privateKey: options.privateKey,
        ...(options.passphrase === '' ? {} : { passphrase: options.passphrase }),
        readyTimeout: (options.connectTimeout ?? 30) * 1000,
        keepaliveInterval: 15000,
        keepaliveCountMax: 4,
        hostVerifier: (key: Buffer): boolean => {
          presented = describePresentedKey(key);
          rejected = hasPins(options.hostKeyPins) && !hostKeyAllowed(options.hostKeyPins, key);
          return !rejected;
        },
      });
    } catch (error) {
      ssh.dispose();
      if (rejected && presented) throw hostKeyMismatch(options, presented);
      throw connectionError(error, options);
    }
    if (!presented) {
      ssh.dispose();
      throw new ActionError(`The server ${options.host} presented no host key; cannot verify it.`, 'host');
    }
    if (!hasPins(options.hostKeyPins)) {
      core.warning(
        `The host key of ${options.host}:${options.port} was not verified. It presented ${presented.type} ` +
          `${presented.fingerprint}. Pin it: add "host-fingerprint: ${presented.fingerprint}" to the step ` +
          '(after checking it on the server with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`).',
        { title: 'Host key not pinned' },
      );
    } else {
      core.info(`Host key verified: ${presented.type} ${presented.fingerprint}`);
    }
    return new RemoteSession(ssh, presented);
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
  async exec(command: string, stdin?: Readable): Promise<CommandResult> {
    const running = await this.start(command);
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
  async run(command: string, what: string, stdin?: Readable): Promise<Buffer> {
    const result = await this.exec(command, stdin);
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
    result.signal !== null
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
  if (code === 127 || /incus-simplestreams: (command )?not found/i.test(stderr)) {
    return '\nHint: incus-simplestreams is not installed on the server. Install the incus-extra package (Debian bookworm-backports, Ubuntu 24.04).';
  }
  return '';
}

function hostKeyMismatch(options: ConnectOptions, presented: PresentedHostKey): ActionError {
  const input = options.hostKeyPins.fingerprints.length > 0 ? 'host-fingerprint' : 'known-hosts';
  return new ActionError(
    `Host key verification failed for ${options.host}:${options.port}: the server presented ${presented.type} ` +
      `${presented.fingerprint}, which ${input} does not allow. Nothing was uploaded. If the server's key ` +
      `was changed on purpose, update ${input}; otherwise someone may be intercepting the connection.`,
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
