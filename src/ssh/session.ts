/**
 * The SSH session once connected (ssh/connect.ts): quoted commands (ssh/shell.ts) run with their
 * exit status checked, file contents streamed over stdin, and held commands (lock holders).
 *
 * Over 300 lines on purpose: a command's channel, its time limit, its output cap, the tunnel
 * through a bastion and what happens to commands in flight when the connection goes all hang on
 * the one connection object; split, each part would reach into the others.
 */
import type { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { debug, debugOn, holdsSecret } from '../common/debug.js';
import { ActionError } from '../common/errors.js';
import type { PresentedHostKey } from './hostkeys.js';
import { remoteFailure } from './remote-failure.js';
import { quoteArg, splitCommandLine } from './shell.js';

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

/** The most output kept from one command: a registry's images.json is far smaller. */
export const MAX_STDOUT_BYTES = 64 << 20;

export interface ExecOptions {
  /** Streamed to the command with back-pressure, so large files pass without being held in memory. */
  stdin?: Readable;
  /** Stop waiting after this many seconds; 0 or absent: no limit. */
  timeoutSeconds?: number;
}

export interface RunOptions extends ExecOptions {
  /** What the command does, for the error message ("Reading the index"). */
  what: string;
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
  private stdoutBytes = 0;
  /** Set when the command printed more than MAX_STDOUT_BYTES; its channel is then closed. */
  overflowed = false;
  private stderr = '';
  private code: number | null = null;
  private signal: string | null = null;
  private readonly stdoutListeners: (() => void)[] = [];
  readonly closed: Promise<void>;
  private settleClosed: () => void = () => undefined;

  constructor(readonly channel: ClientChannel) {
    channel.on('data', (chunk: Buffer) => {
      if (this.overflowed) return;
      this.stdoutBytes += chunk.length;
      if (this.stdoutBytes > MAX_STDOUT_BYTES) {
        this.overflowed = true;
        this.stdout.length = 0;
        channel.close();
        return;
      }
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
    this.closed = new Promise((resolve) => {
      this.settleClosed = resolve;
      channel.on('close', () => resolve());
    });
  }

  /**
   * The connection is gone: the channel may never report its close (a tunnel cut on the far
   * side of a bastion), so whoever waits on it is released, and a stream piped into it fails.
   */
  abandon(): void {
    this.channel.destroy();
    this.settleClosed();
  }

  onStdout(listener: () => void): void {
    this.stdoutListeners.push(listener);
  }

  result(): CommandResult {
    return { code: this.code, signal: this.signal, stdout: Buffer.concat(this.stdout), stderr: this.stderr };
  }
}

/** Server scripts whose full text the debug log has shown already (once per script name). */
const scriptsShown = new Set<string>();

/** Logs a command as sent (step debug only): a script's text once per name, then its arguments. */
function debugCommand(label: string, number: number, command: string): void {
  if (!debugOn()) return;
  const words = splitCommandLine(command);
  if (words && words.length >= 4 && words[0] === 'sh' && words[1] === '-c') {
    const [, , script, name, ...args] = words as [string, string, string, string, ...string[]];
    if (!scriptsShown.has(name)) {
      scriptsShown.add(name);
      debug(`server script ${name}:\n${script}`);
    }
    debug(`${label} exec #${number}: sh -c <script ${name}> ${[name, ...args].map(quoteArg).join(' ')}`);
    return;
  }
  debug(`${label} exec #${number}: ${command}`);
}

export class RemoteSession {
  private closed = false;
  /** Exec channels opened on this connection: each is at least one round trip. */
  private channels = 0;
  /** Connections this one runs through (a bastion's), closed with it. */
  private readonly carriers: RemoteSession[] = [];

  constructor(
    private readonly ssh: NodeSSH,
    readonly hostKey: PresentedHostKey,
    /** For the debug log: which server this is ("registry", "bastion"). */
    private readonly label = 'registry',
  ) {
    // Without a listener, a reset connection would be an unhandled 'error' event and end the
    // process; here it only marks the session as gone, and the command in flight fails.
    ssh.connection?.on('error', () => this.gone());
    ssh.connection?.on('close', () => this.gone());
  }

  /** Commands in flight, released when the connection goes. */
  private readonly running = new Set<RunningCommand>();

  /** Marks the session as gone and releases every command still waiting on it. */
  private gone(): void {
    this.closed = true;
    for (const running of this.running) running.abandon();
    this.running.clear();
  }

  /** Whether the connection is still up (false once the server or the network dropped it). */
  isConnected(): boolean {
    return !this.closed && this.ssh.isConnected();
  }

  /**
   * Opens an exec channel. Its listeners are attached inside ssh2's callback, synchronously: a
   * fast command's output, exit status and close can arrive in the same read as the channel's
   * confirmation, and would be missed by listeners attached a tick later.
   */
  private start(command: string): Promise<RunningCommand> {
    const connection = this.ssh.connection;
    if (!connection || this.closed) return Promise.reject(new Error('the SSH connection is closed'));
    // Secrets go to the server only as key material during authentication, never in a command.
    if (holdsSecret(command)) return Promise.reject(new Error('refusing to send a command that holds a secret'));
    this.channels += 1;
    debugCommand(this.label, this.channels, command);
    return new Promise((resolve, reject) => {
      connection.exec(command, (error, channel) => {
        if (error) return reject(error);
        const running = new RunningCommand(channel);
        this.running.add(running);
        void running.closed.then(() => this.running.delete(running));
        resolve(running);
      });
    });
  }

  /**
   * A TCP connection from the server to `host`:`port` (a direct-tcpip channel, as `ssh -J` opens
   * one on a bastion), as a stream for the next SSH connection's `sock`. Fails after `timeoutSeconds`.
   */
  forwardOut(host: string, port: number, timeoutSeconds: number): Promise<Duplex> {
    const connection = this.ssh.connection;
    if (!connection || this.closed) return Promise.reject(new Error('the SSH connection is closed'));
    debug(`${this.label}: opening a tunnel to ${host}:${port}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no tunnel within ${timeoutSeconds} s (timed out)`)),
        timeoutSeconds * 1000,
      );
      connection.forwardOut('127.0.0.1', 0, host, port, (error, channel) => {
        clearTimeout(timer);
        if (error) return reject(error);
        // When the far side goes (the bastion's TCP connection to the server drops), the tunnel
        // only ends for reading; the connection through it must see a closed socket at once, not
        // after its keepalives run out.
        channel.on('end', () => channel.destroy());
        resolve(channel);
      });
    });
  }

  /** Closes `carrier` (the bastion this connection is tunnelled through) when this one is disposed. */
  runsThrough(carrier: RemoteSession): void {
    this.carriers.push(carrier);
    // The tunnel goes with the bastion: this connection is then gone too.
    carrier.ssh.connection?.on('close', () => this.gone());
  }

  /**
   * Runs a command (built with ssh/shell.ts) and collects its output and exit status. Output past
   * MAX_STDOUT_BYTES stops the command and fails the run: what the server prints is untrusted.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<CommandResult> {
    const running = await this.start(command);
    const result = await this.collect(running, options);
    if (running.overflowed) {
      throw new ActionError(
        `A command on the server printed more than ${MAX_STDOUT_BYTES >> 20} MiB and was stopped: the registry ` +
          'holds something other than what this action writes (an images.json that large, or a noisy login ' +
          "shell). Check simplestreams-dir and the SSH user's shell startup files.",
      );
    }
    return result;
  }

  private async collect(running: RunningCommand, options: ExecOptions): Promise<CommandResult> {
    const { stdin, timeoutSeconds = 0 } = options;
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

  /** Runs a command and fails with its stderr (and a hint) unless it exits with status 0. */
  async run(command: string, options: RunOptions): Promise<Buffer> {
    const result = await this.exec(command, options);
    if (result.code !== 0) {
      throw new ActionError(remoteFailure(options.what, result));
    }
    return result.stdout;
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

  dispose(): void {
    debug(`${this.label}: ${this.channels} exec channel${this.channels === 1 ? '' : 's'} opened (round trips)`);
    this.ssh.dispose();
    for (const carrier of this.carriers) carrier.dispose();
  }
}
