/** An SSH connection that can be opened again when it drops (the upload retries through it). */
import { connect, type ConnectOptions } from './connect.js';
import type { RemoteSession } from './session.js';

export class Connection {
  private constructor(
    private current: RemoteSession,
    private readonly options: ConnectOptions,
  ) {}

  static async open(options: ConnectOptions): Promise<Connection> {
    return new Connection(await connect(options), options);
  }

  /** The session in use now; a new one after reconnect(). */
  get session(): RemoteSession {
    return this.current;
  }

  async reconnect(): Promise<void> {
    this.current.dispose();
    this.current = await connect(this.options);
  }

  dispose(): void {
    this.current.dispose();
  }
}
