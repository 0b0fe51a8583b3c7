// A TCP proxy on loopback for integration tests: forwards each connection to a target port
// (sshd), and can cut the first connection once a number of bytes have gone client→server, as a
// dropped network link would. Later connections pass through untouched.
import net from 'node:net';

export interface ProxyOptions {
  targetPort: number;
  targetHost?: string;
  /** Cut the first connection (destroy both sockets) once this many bytes went client→server. */
  cutAfterBytes?: number;
}

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections cut so far (0 or 1). */
  readonly cuts: number;
  /** Bytes client→server, per accepted connection, in order. */
  readonly bytesUp: readonly number[];
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

export async function startProxy(options: ProxyOptions): Promise<TcpProxy> {
  const targetHost = options.targetHost ?? HOST;
  const sockets = new Set<net.Socket>();
  const bytesUp: number[] = [];
  let connections = 0;
  let cuts = 0;

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // the peer going away is expected here
  };

  const server = net.createServer((client) => {
    const index = connections++;
    bytesUp[index] = 0;
    const cutHere = index === 0 && options.cutAfterBytes !== undefined;
    const limit = options.cutAfterBytes ?? Infinity;
    const upstream = net.connect({ host: targetHost, port: options.targetPort });
    track(client);
    track(upstream);
    let cut = false;

    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      let data = chunk;
      if (cutHere && bytesUp[index]! + chunk.length >= limit) {
        data = chunk.subarray(0, limit - bytesUp[index]!);
        cut = true;
      }
      bytesUp[index]! += data.length;
      if (data.length > 0 && !upstream.write(data)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
      if (cut) {
        cuts++;
        client.destroy();
        upstream.destroy();
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy: no address');

  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    bytesUp,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
