// The harness proxy's long-link mode (delayMs), which the bench uses in front of sshd: every
// chunk is held that long in each direction, in order, and nothing is lost or reordered.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { startProxy, type TcpProxy } from '../harness/proxy.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An echo server on loopback. */
async function echoServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

async function proxyTo(port: number, delayMs: number): Promise<TcpProxy> {
  const proxy = await startProxy({ targetPort: port, delayMs });
  closers.push(() => proxy.close());
  return proxy;
}

function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.on('error', reject);
    closers.push(() => {
      socket.destroy();
      return Promise.resolve();
    });
  });
}

/** Sends `data` and resolves with the time until as many bytes came back, and their sha256. */
function echo(socket: net.Socket, data: Buffer): Promise<{ ms: number; sha256: string }> {
  const started = performance.now();
  const hash = createHash('sha256');
  let got = 0;
  return new Promise((resolve) => {
    const onData = (chunk: Buffer) => {
      hash.update(chunk);
      got += chunk.length;
      if (got >= data.length) {
        socket.off('data', onData);
        resolve({ ms: performance.now() - started, sha256: hash.digest('hex') });
      }
    };
    socket.on('data', onData);
    socket.write(data);
  });
}

describe('the proxy with delayMs', () => {
  it('holds each direction that long: a small echo takes two delays', async () => {
    const proxy = await proxyTo(await echoServer(), 40);
    const socket = await connectTo(proxy.port);
    const { ms } = await echo(socket, Buffer.from('ping'));
    expect(ms).toBeGreaterThanOrEqual(78);
    expect(ms).toBeLessThan(400);
  });

  it('passes many chunks through in order, and every byte', async () => {
    const proxy = await proxyTo(await echoServer(), 10);
    const socket = await connectTo(proxy.port);
    const data = randomBytes(16 << 20);
    const { sha256 } = await echo(socket, data);
    expect(sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect(proxy.bytesUp[0]).toBe(data.length);
  });

  it('forwards at once without a delay', async () => {
    const proxy = await proxyTo(await echoServer(), 0);
    const socket = await connectTo(proxy.port);
    const { ms } = await echo(socket, Buffer.from('ping'));
    expect(ms).toBeLessThan(40);
  });
});

describe('the proxy with upBytesPerSecond and pauseUp', () => {
  it('paces what the client sends, every byte in order', async () => {
    const proxy = await startProxy({ targetPort: await echoServer(), upBytesPerSecond: 1 << 20 });
    closers.push(() => proxy.close());
    const socket = await connectTo(proxy.port);
    const data = randomBytes(1 << 20);
    const { ms, sha256 } = await echo(socket, data);
    expect(sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect(ms).toBeGreaterThanOrEqual(950); // 1 MiB at 1 MiB/s
  });

  it('holds what the client sends while paused, and delivers it on resume', async () => {
    const proxy = await proxyTo(await echoServer(), 0);
    const socket = await connectTo(proxy.port);
    proxy.pauseUp();
    let got = 0;
    socket.on('data', (chunk: Buffer) => (got += chunk.length));
    const echoed = echo(socket, Buffer.from('held'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(got).toBe(0);
    proxy.resumeUp();
    await echoed;
    expect(got).toBe(4);
  });
});
