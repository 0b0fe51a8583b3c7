// Measures the ways ssh2 can move a file to the server, on the loopback registry, to choose the
// upload path (docs/performance.md). Each method sends the same 256 MiB file several times,
// alternating, and the medians are printed next to OpenSSH scp's.
//
//   npx tsx scripts/upload-paths.ts [MiB] [runs]
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { NodeSSH } from 'node-ssh';
import type { SFTPWrapper } from 'ssh2';
import { startRegistry, type Registry } from '../__tests__/harness/registry.js';
import { connect } from '../src/ssh/connect.js';
import type { RemoteSession } from '../src/ssh/session.js';
import { commandLine } from '../src/ssh/shell.js';

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? '256') * MiB;
const runs = Number(process.argv[3] ?? '3');

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

function connectOptions(registry: Registry) {
  return {
    host: registry.host,
    port: registry.sshPort,
    username: registry.username,
    privateKey: registry.privateKey,
    passphrase: '',
    hostKeyPins: { fingerprints: [registry.hostKeyFingerprint], knownKeys: [] },
  };
}

/** A plain node-ssh connection offering only `cipher` (or ssh2's defaults), Nagle off. */
async function rawConnection(registry: Registry, cipher?: string): Promise<NodeSSH> {
  const ssh = new NodeSSH();
  await ssh.connect({ ...connectOptions(registry), ...(cipher ? { algorithms: { cipher: [cipher as never] } } : {}) });
  ssh.connection?.setNoDelay(true);
  return ssh;
}

async function execCat(s: RemoteSession, file: string, target: string): Promise<void> {
  await s.run(`cat > '${target}'`, { what: 'cat', stdin: createReadStream(file, { highWaterMark: 256 * 1024 }) });
}

async function rawExec(ssh: NodeSSH, file: string, target: string): Promise<void> {
  await ssh.execCommand(`cat > '${target}'`, { stdin: createReadStream(file, { highWaterMark: 256 * 1024 }) });
}

async function sftpPut(
  ssh: NodeSSH,
  file: string,
  target: string,
  concurrency: number,
  chunkSize: number,
): Promise<void> {
  const sftp: SFTPWrapper = await ssh.requestSFTP();
  await new Promise<void>((resolve, reject) =>
    sftp.fastPut(file, target, { concurrency, chunkSize }, (error) => (error ? reject(error) : resolve())),
  );
  sftp.end();
}

/** Two exec channels, each writing one half of the file at its offset. */
async function parallelExec(s: RemoteSession, file: string, target: string): Promise<void> {
  const half = Math.ceil(size / 2 / MiB) * MiB;
  await s.run(commandLine(['truncate', '-s', String(size), target]), { what: 'truncate' });
  await Promise.all(
    [0, 1].map((part) =>
      s.run(`dd of='${target}' bs=1M seek=${(part * half) / MiB} conv=notrunc status=none`, {
        what: 'dd',
        stdin: createReadStream(file, {
          start: part * half,
          end: Math.min(size, (part + 1) * half) - 1,
          highWaterMark: 256 * 1024,
        }),
      }),
    ),
  );
}

const registry = await startRegistry();
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-paths-'));
try {
  const file = path.join(work, 'payload.bin');
  const handle = await fsp.open(file, 'w');
  for (let written = 0; written < size; written += 8 * MiB)
    await handle.write(randomBytes(Math.min(8 * MiB, size - written)));
  await handle.close();
  const target = path.join(registry.uploadDir, 'payload.bin');
  const gcm = await connect(connectOptions(registry));
  const plain = await rawConnection(registry);
  const aes256 = await rawConnection(registry, 'aes256-gcm@openssh.com');
  const chacha = await rawConnection(registry, 'chacha20-poly1305@openssh.com');
  const methods: [string, () => Promise<unknown>][] = [
    ['OpenSSH scp (baseline)', () => registry.scp(file, target)],
    ['exec cat, aes128-gcm (chosen)', () => execCat(gcm, file, target)],
    ['exec cat, aes256-gcm', () => rawExec(aes256, file, target)],
    ['exec cat, chacha20-poly1305 (pure JS)', () => rawExec(chacha, file, target)],
    ['2 exec channels in parallel', () => parallelExec(gcm, file, target)],
    ['SFTP fastPut 64 x 32 KiB (default)', () => sftpPut(plain, file, target, 64, 32 * 1024)],
    ['SFTP fastPut 128 x 32 KiB', () => sftpPut(plain, file, target, 128, 32 * 1024)],
    ['SFTP fastPut 64 x 64 KiB', () => sftpPut(plain, file, target, 64, 64 * 1024)],
  ];
  const times = new Map<string, number[]>(methods.map(([name]) => [name, []]));
  for (let run = 0; run < runs; run++) {
    for (const [name, method] of methods) {
      await fsp.rm(target, { force: true });
      const started = process.hrtime.bigint();
      await method();
      times.get(name)?.push(Number(process.hrtime.bigint() - started) / 1e9);
      const written = (await fsp.stat(target)).size;
      if (written !== size) throw new Error(`${name} wrote ${written} of ${size} bytes`);
    }
  }
  const base = median(times.get('OpenSSH scp (baseline)') ?? []);
  console.log(`| method (${size / MiB} MiB, median of ${runs}) | time | MB/s | vs scp |`);
  console.log('| --- | --- | --- | --- |');
  for (const [name] of methods) {
    const t = median(times.get(name) ?? []);
    console.log(`| ${name} | ${t.toFixed(2)} s | ${(size / 1e6 / t).toFixed(0)} | ${(t / base).toFixed(2)} |`);
  }
  gcm.dispose();
  for (const ssh of [plain, aes256, chacha]) ssh.dispose();
} finally {
  await registry.stop();
  await fsp.rm(work, { recursive: true, force: true });
}
