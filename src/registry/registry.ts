/**
 * The registry handle: the SSH connection and the server-side paths, and the one way to run this
 * action's server scripts (registry/scripts.ts) there. The steps live beside it, one topic a
 * file: read.ts (live index, pre-upload checks), lock.ts, upload.ts, stage.ts, commit.ts,
 * housekeeping.ts, and publication.ts, which puts the locked steps together.
 */
import { Connection } from '../ssh/connection.js';
import type { ConnectOptions } from '../ssh/connect.js';
import { checkLoginShell } from '../ssh/login-shell.js';
import type { CommandResult, ExecOptions, RemoteSession, RunOptions } from '../ssh/session.js';
import { scriptCommand } from '../ssh/shell.js';
import type { RegistryPaths } from './layout.js';
import type { ServerScript } from './scripts.js';

export class Registry {
  private constructor(
    private readonly connection: Connection,
    readonly paths: RegistryPaths,
  ) {}

  /** Connects, and checks that the login shell reads the quoting every command relies on. */
  static async open(options: ConnectOptions & RegistryPaths): Promise<Registry> {
    const { simplestreamsDir, uploadDir } = options;
    const connection = await Connection.open(options);
    try {
      await checkLoginShell(connection.session, options.username);
    } catch (error) {
      connection.dispose();
      throw error;
    }
    return new Registry(connection, { simplestreamsDir, uploadDir });
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
