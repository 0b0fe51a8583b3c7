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
import { StringDecoder } from 'node:string_decoder';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { debug, debugOn, holdsSecret } from '../common/debug.js';
import { ActionError, describeError, withoutControlCharacters } from '../common/errors.js';
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
const MAX_STDOUT_BYTES = 64 << 20;

export interface ExecOptions {
  /** Streamed to the command with back-pressure, so large files pass without being held in memory. */
  stdin?: Readable;
  /** Stop waiting after this many seconds; 0 or absent: no limit. */
  timeoutSeconds?: number;
  /** What the command does, for the error message ("Reading the index"). */
  what?: string;
}

export interface RunOptions extends ExecOptions {
  what: string;
}

/**
 * The error for a command cut off by the connection's end: what was being done, and that every
 * change to the registry happens whole or not at all, so that running the step again is safe.
 */
export function connectionDropped(what: string | undefined, cause: string): ActionError {
  return new ActionError(
    `The SSH connection to the server dropped${what ? ` while: ${what}` : ''} (${withoutControlCharacters(cause)}). ` +
      'Every change to the registry is made whole or not at all, so nothing half-done is live. Run the step again: an ' +
      'upload resumes where it stopped, and a publish that went through reports status unchanged.',
  );
}

export interface HeldCommand {
  /** The line that `startHeld` waited for. */
  firstLine: string;
  /** Every line printed up to it (the last one is `firstLine`). */
  lines: string[];
  /** Writes to its stdin (a lease's heartbeat); nothing once it has ended. */
  send(text: string): void;
  /** Settles when it has ended, released or not (a lease the server let go). */
  ended: Promise<CommandResult>;
  release(): Promise<void>;
}

/** A command whose stdin the caller writes itself (the parallel upload's writers). */
export interface OpenCommand {
  stdin: ClientChannel;
  /** How the command ended: settles once its channel is closed. */
  ended: Promise<CommandResult>;
}

/** What this process did over SSH so far: read by the bench, logged at the end of a run. */
const sshCounters = {
  /** SSH connections opened (a handshake each: several round trips). */
  connections: 0,
  /** Exec channels opened (each one costs at least a round trip). */
  commands: 0,
  /** Of those, the ones opened alongside others, in parallel (the upload's extra channels). */
  parallel: 0,
};

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

/** The counters as one log line: what a run cost in round trips. */
export function describeSshCounters(): string {
  const { connections, commands, parallel } = sshCounters;
  return (
    `SSH: ${connections} connection${connections === 1 ? '' : 's'}, ${commands - parallel} commands in sequence` +
    (parallel > 0 ? ` (and ${parallel} upload channels opened alongside)` : '')
  );
}

/**
 * The server refused to open a channel (sshd's MaxSessions: "open failed"), so its command never
 * ran. Made only where ssh2 answers a channel request: a command's own output that reads the
 * same way is not a refusal.
 */
export class ChannelRefused extends Error {}

const REFUSAL = /open failed|administratively prohibited|channel open failure/i;

/** Whether an error is the server refusing a channel, before any command ran on it. */
export const isOpenRefusal = (error: unknown): error is ChannelRefused => error instanceof ChannelRefused;

export class RemoteSession {
  private closed = false;
  /** How long the last channel took to open and start its command (two round trips), in ms. */
  lastOpenMs: number | undefined;
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
    sshCounters.connections++;
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
  private async start(command: string, retryRefused = true): Promise<RunningCommand> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.startOnce(command);
      } catch (error) {
        // A server with a low MaxSessions counts a channel just closed until its main loop has
        // collected it: a channel opened right after may be refused for a moment.
        if (!retryRefused || attempt >= 6 || !isOpenRefusal(error) || !this.isConnected()) throw error;
        await sleep(20 * 2 ** attempt);
      }
    }
  }

  private startOnce(command: string): Promise<RunningCommand> {
    const connection = this.ssh.connection;
    if (!connection || this.closed) return Promise.reject(new Error('the SSH connection is closed'));
    // Secrets go to the server only as key material during authentication, never in a command.
    if (holdsSecret(command)) return Promise.reject(new Error('refusing to send a command that holds a secret'));
    this.channels += 1;
    sshCounters.commands++;
    debugCommand(this.label, this.channels, command);
    const started = performance.now();
    return new Promise((resolve, reject) => {
      connection.exec(command, (error, channel) => {
        // Two round trips: the channel's open, then the exec request's answer.
        this.lastOpenMs = performance.now() - started;
        if (error) return reject(REFUSAL.test(error.message) ? new ChannelRefused(error.message) : error);
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
    let running: RunningCommand;
    let result: CommandResult;
    try {
      running = await this.start(command);
      result = await this.collect(running, options);
    } catch (error) {
      if (!this.isConnected() && !(error instanceof ActionError))
        throw connectionDropped(options.what, describeError(error));
      throw error;
    }
    // sshd reports how every command ends (an exit status or a signal): a channel that closed
    // without either, and not by a time limit or an output cap of ours, went with the connection.
    if (result.code === null && result.signal === null && !result.timedOutAfter && !running.overflowed) {
      throw connectionDropped(options.what, 'the command ended without an exit status');
    }
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
   * Opens a command whose stdin the caller writes (and ends) itself, with back-pressure through
   * the channel. `parallel`: one of several opened at once (counted apart, as they share a round
   * trip). Its stdout is collected like any command's, within MAX_STDOUT_BYTES.
   */
  async open(command: string, parallel = false): Promise<OpenCommand> {
    if (parallel) sshCounters.parallel++;
    // Writers beyond what the server allows are refused for good: the caller goes on without them.
    const running = await this.start(command, false);
    return { stdin: running.channel, ended: running.closed.then(() => running.result()) };
  }

  /**
   * Starts a command that keeps running until released, and resolves once it has printed its
   * first line, or the first line that `until` accepts (for example a lock holder announcing that
   * it holds the lock, after what it found). Releasing closes its stdin; a dropped connection
   * does the same on the server side.
   */
  async startHeld(command: string, until: (line: string) => boolean = () => true): Promise<HeldCommand> {
    const running = await this.start(command);
    const lines: string[] = [];
    const firstLine = await new Promise<string>((resolve, reject) => {
      // Each chunk is read once: a holder may print a large index on one line (REGISTRY_LOCK),
      // which must not be decoded and split again with every chunk that follows.
      const decoder = new StringDecoder('utf8');
      let seen = 0;
      let pieces: string[] = []; // the line being read, so far (no line break in it)
      let found = false;
      const check = (): void => {
        if (found) return;
        for (; seen < running.stdout.length; seen++) {
          const text = decoder.write(running.stdout[seen] as Buffer);
          let start = 0;
          for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
            pieces.push(text.slice(start, end));
            const line = pieces.join('');
            pieces = [];
            start = end + 1;
            lines.push(line);
            if (until(line)) {
              found = true;
              resolve(line);
              return;
            }
          }
          if (start < text.length) pieces.push(text.slice(start));
        }
      };
      running.onStdout(check);
      check();
      void running.closed.then(() => reject(new HeldCommandEnded(running.result())));
    });
    return {
      firstLine,
      lines,
      send: (text: string): void => {
        if (running.channel.writable) running.channel.write(text);
      },
      ended: running.closed.then(() => running.result()),
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
