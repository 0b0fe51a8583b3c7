// A registry behind a bastion, built on one machine with network namespaces (root only):
//
//   runner namespace (10.A.B.2)  --veth--  root namespace: bastion sshd on 10.A.B.1
//                                          root namespace (10.A.B.5) --veth-- registry namespace:
//                                                                              sshd on 10.A.B.6:22
//
// The action's bundle runs in the runner namespace, which has no default route: the only
// addresses it can reach are its own and the bastion's, so the registry is reachable only through
// a tunnel the bastion opens. The registry's sshd in its namespace serves the harness registry's
// directories with the harness's own sshd config (same host key, same authorized key), bound to
// the namespace's address. Every address is one the test made; stop() removes both namespaces
// (and with them the veth pairs) and the daemons.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run, runOk, sleep } from './exec.js';
import { readLog, spawnDaemon, terminate, type Daemon, type Registry } from './registry.js';

export interface Bastion {
  /** Where the runner namespace reaches the bastion's sshd. */
  host: string;
  port: number;
  /** The key the bastion authorises (not the registry's). */
  privateKey: string;
  hostKeyFingerprint: string;
  /** A known_hosts line for host:port. */
  knownHostsLine: string;
  logFile: string;
}

export interface BehindBastion {
  /** Run a command in the runner namespace: prefix for spawn (`ip netns exec NS`). */
  runnerPrefix: string[];
  /** The registry sshd's address and port, as the bastion reaches it (the runner cannot). */
  registryHost: string;
  registryPort: number;
  bastion: Bastion;
  stop(): Promise<void>;
}

async function ip(args: string[]): Promise<void> {
  await runOk('ip', args);
}

/** The first address of a 10.A.B.C/29 block in a 10.A/16 that no interface or route of this machine uses. */
async function freeBlock(): Promise<string> {
  const used = (await runOk('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout;
  const addrs = (await runOk('ip', ['-4', 'addr'])).stdout;
  for (;;) {
    const a = 64 + ((randomBytes(1)[0] as number) % 128);
    const b = (randomBytes(1)[0] as number) & 0xf8;
    const prefix = `10.${a}.`;
    if (!used.includes(prefix) && !addrs.includes(prefix)) return `10.${a}.${(randomBytes(1)[0] as number) % 250}.${b}`;
  }
}

/** A TCP port nothing listens on in the root namespace (any address). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '0.0.0.0', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function bannerProbe(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const finish = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => finish(false));
    sock.on('error', () => finish(false));
    sock.on('data', (b: Buffer) => finish(b.toString('latin1').startsWith('SSH-2.0-')));
  });
}

async function waitBanner(daemon: Daemon, host: string, port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await bannerProbe(host, port))) {
    if (daemon.hasExited()) throw new Error(`${daemon.name} exited:\n${readLog(daemon.logFile)}`);
    if (Date.now() > deadline) throw new Error(`${daemon.name} not ready:\n${readLog(daemon.logFile)}`);
    await sleep(50);
  }
}

/** Puts `registry`'s sshd (a second one, same config) behind a bastion, as drawn above. */
export async function behindBastion(registry: Registry): Promise<BehindBastion> {
  const id = randomBytes(3).toString('hex');
  const runNs = `lxcp-run-${id}`;
  const regNs = `lxcp-reg-${id}`;
  const vethRun = [`lxr${id}a`, `lxr${id}b`];
  const vethReg = [`lxg${id}a`, `lxg${id}b`];
  const block = await freeBlock();
  const [bastionAddr, runnerAddr, rootRegAddr, registryAddr] = [1, 2, 5, 6].map((n) =>
    block.replace(/\.\d+$/, (last) => `.${Number(last.slice(1)) + n}`),
  ) as [string, string, string, string];
  const dir = path.join(registry.root, `bastion-${id}`);
  const daemons: Daemon[] = [];
  const namespaces: string[] = [];

  const stop = async (): Promise<void> => {
    await terminate(daemons);
    // Deleting a namespace deletes the veth ends in it, and so each pair.
    for (const ns of namespaces) await run('ip', ['netns', 'delete', ns]);
    for (const veth of [vethRun[0], vethReg[0]]) await run('ip', ['link', 'delete', veth as string]);
  };

  try {
    await fsp.mkdir(dir, { recursive: true });
    for (const ns of [runNs, regNs]) {
      await ip(['netns', 'add', ns]);
      namespaces.push(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Runner namespace <-> root (the bastion's address). No default route in the runner namespace.
    await ip(['link', 'add', vethRun[0] as string, 'type', 'veth', 'peer', 'name', vethRun[1] as string]);
    await ip(['link', 'set', vethRun[1] as string, 'netns', runNs]);
    await ip(['addr', 'add', `${bastionAddr}/30`, 'dev', vethRun[0] as string]);
    await ip(['link', 'set', vethRun[0] as string, 'up']);
    await ip(['-n', runNs, 'addr', 'add', `${runnerAddr}/30`, 'dev', vethRun[1] as string]);
    await ip(['-n', runNs, 'link', 'set', vethRun[1] as string, 'up']);
    // Root <-> registry namespace.
    await ip(['link', 'add', vethReg[0] as string, 'type', 'veth', 'peer', 'name', vethReg[1] as string]);
    await ip(['link', 'set', vethReg[1] as string, 'netns', regNs]);
    await ip(['addr', 'add', `${rootRegAddr}/30`, 'dev', vethReg[0] as string]);
    await ip(['link', 'set', vethReg[0] as string, 'up']);
    await ip(['-n', regNs, 'addr', 'add', `${registryAddr}/30`, 'dev', vethReg[1] as string]);
    await ip(['-n', regNs, 'link', 'set', vethReg[1] as string, 'up']);

    // The registry's sshd in its namespace: the harness's config, bound to the namespace address.
    const harnessConfig = await fsp.readFile(path.join(registry.root, 'ssh', 'sshd_config'), 'utf8');
    const registryConfig = path.join(dir, 'registry_sshd_config');
    await fsp.writeFile(
      registryConfig,
      harnessConfig
        .replace(/^Port \d+$/m, 'Port 22')
        .replace(/^ListenAddress .*$/m, `ListenAddress ${registryAddr}`)
        .replace(/^PidFile .*$/m, `PidFile ${path.join(dir, 'registry-sshd.pid')}`),
    );
    const registrySshd = spawnDaemon(
      'registry sshd (namespace)',
      'ip',
      ['netns', 'exec', regNs, '/usr/sbin/sshd', '-D', '-e', '-f', registryConfig],
      path.join(dir, 'registry-sshd.log'),
    );
    daemons.push(registrySshd);
    await waitBanner(registrySshd, registryAddr, 22);

    // The bastion: its own host key and its own authorised key; forwarding allowed (the default).
    const hostKey = path.join(dir, 'bastion_host_ed25519_key');
    const clientKey = path.join(dir, 'bastion_client_ed25519');
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bastion-host', '-f', hostKey]);
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bastion-client', '-f', clientKey]);
    const authorizedKeys = path.join(dir, 'bastion_authorized_keys');
    await fsp.writeFile(authorizedKeys, await fsp.readFile(`${clientKey}.pub`, 'utf8'), { mode: 0o644 });
    const port = await freePort();
    const penalties =
      (await run('/usr/sbin/sshd', ['-G', '-f', '/dev/null', '-o', 'PerSourcePenalties=no'])).code === 0;
    const bastionConfig = path.join(dir, 'bastion_sshd_config');
    await fsp.writeFile(
      bastionConfig,
      [
        `Port ${port}`,
        `ListenAddress ${bastionAddr}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'bastion-sshd.pid')}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'AllowTcpForwarding yes',
        'MaxStartups 100:30:200',
        penalties ? 'PerSourcePenalties no' : '',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    const logFile = path.join(dir, 'bastion-sshd.log');
    const bastionSshd = spawnDaemon('bastion sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', bastionConfig], logFile);
    daemons.push(bastionSshd);
    await waitBanner(bastionSshd, bastionAddr, port);
    const hostPub = (await fsp.readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const fingerprint = (await runOk('ssh-keygen', ['-l', '-f', `${hostKey}.pub`])).stdout.trim().split(/\s+/)[1] ?? '';

    return {
      runnerPrefix: ['ip', 'netns', 'exec', runNs],
      registryHost: registryAddr,
      registryPort: 22,
      bastion: {
        host: bastionAddr,
        port,
        privateKey: await fsp.readFile(clientKey, 'utf8'),
        hostKeyFingerprint: fingerprint,
        knownHostsLine: `[${bastionAddr}]:${port} ${hostPub}`,
        logFile,
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
