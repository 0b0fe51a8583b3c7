// A TCP proxy on loopback for integration tests and the bench: forwards each connection to a
// target port (sshd), and can cut the first connection once a number of bytes have gone
// client→server, as a dropped network link would (later connections pass through untouched). With
// `delayMs` it holds every chunk that long in each direction, in order, which emulates a long link
// (a round trip of 2 × delayMs) on a kernel without netem: what a window-bound transfer feels.
// With `upBytesPerSecond` it paces what the client sends (a thin uplink). close() cuts every
// connection at once (both sockets destroyed), as a proxy killed mid-way would.
import net from 'node:net';

export interface ProxyOptions {
  targetPort: number;
  targetHost?: string;
  /** Cut the first connection (destroy both sockets) once this many bytes went client→server. */
  cutAfterBytes?: number;
  /** Hold each chunk this many milliseconds in each direction (order kept); 0: forward at once. */
  delayMs?: number;
  /** Pace client→server bytes to this rate (a thin uplink); undefined: as fast as they come. */
  upBytesPerSecond?: number;
}

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections cut so far (0 or 1). */
  readonly cuts: number;
  /** Bytes client→server, per accepted connection, in order. */
  readonly bytesUp: readonly number[];
  /**
   * Stops delivering client→server bytes, those held included, until resumeUp(): with the
   * client process stopped too, a runner machine suspended (nothing it sent reaches the server).
   */
  pauseUp(): void;
  resumeUp(): void;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

/** Bytes held in one direction before its source is paused: far above any SSH window. */
const MAX_HELD_BYTES = 64 << 20;

interface Forwarder {
  push(chunk: Buffer): void;
  end(): void;
  /** Holds what arrives (and what is held already) until resume(): a link that went silent. */
  pause(): void;
  resume(): void;
}

/**
 * Writes what `source` hands it to `target`, each chunk (and the end) `delayMs` after it arrived,
 * in order, with back-pressure: the source pauses while the target is full or too much is held.
 * With `bytesPerSecond`, a chunk is due no sooner than the previous one plus its length at that
 * rate.
 */
function forwarder(source: net.Socket, target: net.Socket, delayMs: number, bytesPerSecond?: number): Forwarder {
  const queue: { due: number; chunk?: Buffer }[] = [];
  let lastDue = 0;
  let held = 0;
  let timer: NodeJS.Timeout | undefined;
  let waitingForDrain = false;
  let paused = false;
  const flush = (): void => {
    timer = undefined;
    while (queue.length > 0 && !waitingForDrain && !paused) {
      const head = queue[0]!;
      const wait = head.due - performance.now();
      if (wait > 0) {
        timer = setTimeout(flush, Math.max(1, Math.ceil(wait)));
        return;
      }
      queue.shift();
      if (!head.chunk) {
        target.end();
        continue;
      }
      held -= head.chunk.length;
      if (source.isPaused() && held < MAX_HELD_BYTES / 2) source.resume();
      if (!target.write(head.chunk)) {
        waitingForDrain = true;
        target.once('drain', () => {
          waitingForDrain = false;
          flush();
        });
      }
    }
  };
  const enqueue = (chunk?: Buffer): void => {
    if (delayMs <= 0 && !bytesPerSecond && queue.length === 0 && !waitingForDrain && !paused) {
      if (!chunk) target.end();
      else if (!target.write(chunk)) {
        source.pause();
        target.once('drain', () => source.resume());
      }
      return;
    }
    let due = performance.now() + delayMs;
    if (bytesPerSecond) due = Math.max(due, lastDue) + ((chunk?.length ?? 0) / bytesPerSecond) * 1000;
    lastDue = due;
    queue.push({ due, ...(chunk ? { chunk } : {}) });
    if (chunk) {
      held += chunk.length;
      if (held > MAX_HELD_BYTES) source.pause();
    }
    if (!timer && !waitingForDrain) timer = setTimeout(flush, Math.max(1, delayMs));
  };
  target.on('close', () => clearTimeout(timer));
  return {
    push: (chunk) => enqueue(chunk),
    end: () => enqueue(),
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      if (!timer && !waitingForDrain) flush();
    },
  };
}

export async function startProxy(options: ProxyOptions): Promise<TcpProxy> {
  const delayMs = options.delayMs ?? 0;
  const targetHost = options.targetHost ?? HOST;
  const sockets = new Set<net.Socket>();
  const upstreams = new Set<Forwarder>();
  let upPaused = false;
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
    // Nagle's algorithm would add delays of its own to an emulated link.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    track(client);
    track(upstream);
    let cut = false;

    const toServer = forwarder(client, upstream, delayMs, options.upBytesPerSecond);
    upstreams.add(toServer);
    if (upPaused) toServer.pause();
    upstream.on('close', () => upstreams.delete(toServer));
    const toClient = forwarder(upstream, client, delayMs);
    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      let data = chunk;
      if (cutHere && bytesUp[index]! + chunk.length >= limit) {
        data = chunk.subarray(0, limit - bytesUp[index]!);
        cut = true;
      }
      bytesUp[index]! += data.length;
      if (data.length > 0) toServer.push(data);
      if (cut) {
        cuts++;
        client.destroy();
        upstream.destroy();
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!cut) toClient.push(chunk);
    });
    client.on('end', () => toServer.end());
    upstream.on('end', () => toClient.end());
    // A close follows the bytes still held for the other side.
    const later = (fn: () => void) => (delayMs > 0 ? setTimeout(fn, delayMs + 20) : fn());
    client.on('close', () => later(() => upstream.destroy()));
    upstream.on('close', () => later(() => client.destroy()));
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
    pauseUp(): void {
      upPaused = true;
      for (const forwarding of upstreams) forwarding.pause();
    },
    resumeUp(): void {
      upPaused = false;
      for (const forwarding of upstreams) forwarding.resume();
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
