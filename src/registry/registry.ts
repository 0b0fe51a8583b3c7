/**
 * The registry handle: the SSH connection and the server-side paths, and the one way to run this
 * action's server scripts (registry/scripts.ts) there. The steps live beside it, one topic a
 * file: read.ts (live index, pre-upload checks), lock.ts, upload.ts, stage.ts, commit.ts,
 * housekeeping.ts, and publication.ts, which puts the locked steps together.
 */
import { Connection } from '../ssh/connection.js';
import type { ConnectOptions } from '../ssh/connect.js';
import { Readable } from 'node:stream';
import { afterProbe, checkLoginShell, probedScript } from '../ssh/login-shell.js';
import type { CommandResult, ExecOptions, RemoteSession, RunOptions } from '../ssh/session.js';
import { scriptCommand } from '../ssh/shell.js';
import type { RegistryPaths } from './layout.js';
import type { ServerScript } from './scripts.js';

export class Registry {
  /** Whether the login shell was checked (ssh/login-shell.ts): before anything else runs. */
  private shellChecked = false;
  /**
   * Set when the server refused a channel (sshd's MaxSessions): the part under the registry lock
   * then runs over a connection of its own (withOwnConnection), as the image lock holds one of
   * this connection's few channels.
   */
  sessionsLimited = false;
  /** The round trip as the first command's start measured it (ms); undefined until then. */
  roundTripMs: number | undefined;

  private constructor(
    private readonly connection: Connection,
    readonly paths: RegistryPaths,
    private readonly options: ConnectOptions,
  ) {}

  private get username(): string {
    return this.options.username;
  }

  /**
   * Connects. The login shell is checked by the first command (execProbedScript), or by
   * checkLoginShell() before a command of another kind.
   */
  static async open(options: ConnectOptions & RegistryPaths): Promise<Registry> {
    const { simplestreamsDir, uploadDir } = options;
    return new Registry(await Connection.open(options), { simplestreamsDir, uploadDir }, options);
  }

  /** Runs `fn` with a registry on a new connection to the same server (closed afterwards). */
  async withOwnConnection<T>(fn: (registry: Registry) => Promise<T>): Promise<T> {
    const other = new Registry(await Connection.open(this.options), this.paths, this.options);
    other.shellChecked = this.shellChecked;
    try {
      return await fn(other);
    } finally {
      other.close();
    }
  }

  /** Checks that the login shell reads the quoting every command relies on (once). */
  async checkLoginShell(): Promise<void> {
    if (this.shellChecked) return;
    await checkLoginShell(this.session, this.username);
    this.shellChecked = true;
  }

  /**
   * Runs a server script; as the connection's first command, in the same round trip as the
   * login shell's check (ssh/login-shell.ts probedScript), which fails first when the shell
   * misreads the probe.
   */
  async execProbedScript(
    script: ServerScript,
    args: readonly string[],
    options: ExecOptions = {},
  ): Promise<CommandResult> {
    if (this.shellChecked) return this.execScript(script, args, options);
    const probed = probedScript(script.text, args);
    const result = await this.session.exec(probed.command, { ...options, stdin: Readable.from([probed.stdin]) });
    // Opening its channel and starting the command took two round trips.
    const opened = this.session.lastOpenMs;
    if (opened !== undefined) this.roundTripMs = opened / 2;
    const output = afterProbe(this.username, result);
    this.shellChecked = true;
    return output;
  }

  /** The session in use now (a new one after reconnect()). */
  get session(): RemoteSession {
    return this.connection.session;
  }

  isConnected(): boolean {
    return this.connection.session.isConnected();
  }

  /** Opens a new connection after the previous one dropped (the upload retries through it). */
  reconnect(): Promise<void> {
    return this.connection.reconnect();
  }

  /** Runs a server script and fails with its stderr unless it exits with status 0. */
  runScript(script: ServerScript, args: readonly string[], options: RunOptions): Promise<Buffer> {
    return this.session.run(scriptCommand(script.text, script.name, args), options);
  }

  /** Runs a server script and returns how it ended, whatever its status. */
  execScript(script: ServerScript, args: readonly string[], options: ExecOptions = {}): Promise<CommandResult> {
    return this.session.exec(scriptCommand(script.text, script.name, args), options);
  }

  close(): void {
    this.connection.dispose();
  }
}
