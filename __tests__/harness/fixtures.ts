// Small fixtures for failure tests: network endpoints that misbehave in known ways, a PATH that
// lacks chosen programs, and a recursive listing of a directory tree to prove it was not touched.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const HOST = '127.0.0.1';

export interface SilentListener {
  port: number;
  /** TCP connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/** Accepts TCP connections on loopback and never sends a byte: an SSH server that hangs. */
export async function startSilentListener(): Promise<SilentListener> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and drop whatever the client sends
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('silent listener: no address');
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    get connections() {
      return connections;
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

/** A loopback port nothing listens on (picked, then released): connecting to it is refused. */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Fills `dir` with symlinks to every program in `from` except `without`: a PATH of its own for a
 * session that must lack some programs, without changing the machine. `dir` is made world-readable.
 */
export async function pathWithout(dir: string, without: string[], from: string[] = ['/usr/bin']): Promise<string> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsp.chmod(dir, 0o755);
  const linked = new Set<string>();
  for (const source of from) {
    for (const name of await fsp.readdir(source)) {
      if (without.includes(name) || linked.has(name)) continue;
      linked.add(name);
      await fsp.symlink(path.join(source, name), path.join(dir, name));
    }
  }
  return dir;
}

/**
 * Every entry under `dir`, sorted, one line each: relative path, kind, mode, owner and size (or
 * link target). Two equal snapshots mean nothing was added, removed, resized or re-owned.
 */
/**
 * A tree exactly: snapshotTree's lines with each file's sha256 and every entry's modification
 * time, so that a rewrite with the same bytes, or a touch, shows too.
 */
export async function exactTree(dir: string): Promise<string[]> {
  const lines = await snapshotTree(dir);
  return Promise.all(
    lines.map(async (line) => {
      const entry = line.split(' ')[0] as string;
      const full = path.join(dir, entry);
      const info = await fsp.lstat(full);
      const content = info.isFile()
        ? createHash('sha256')
            .update(await fsp.readFile(full))
            .digest('hex')
        : '';
      return `${line} ${info.mtimeMs} ${content}`;
    }),
  );
}

export async function snapshotTree(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(dir, relative))).sort();
    for (const name of names) {
      const entry = relative === '' ? name : `${relative}/${name}`;
      const info = await fsp.lstat(path.join(dir, entry));
      const mode = (info.mode & 0o7777).toString(8);
      if (info.isDirectory()) {
        lines.push(`${entry}/ dir ${mode} ${info.uid}`);
        await walk(entry);
      } else if (info.isSymbolicLink()) {
        lines.push(`${entry} -> ${await fsp.readlink(path.join(dir, entry))}`);
      } else {
        lines.push(`${entry} ${info.isFile() ? 'file' : 'other'} ${mode} ${info.uid} ${info.size}`);
      }
    }
  };
  await walk('');
  return lines;
}
