// A real simplestreams registry on loopback for integration tests: OpenSSH sshd (upload side) and
// nginx over TLS (download side) serving a directory written by incus-simplestreams. Everything lives
// in one fresh temp dir, uses ports picked at runtime on 127.0.0.1, and is torn down by stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, promises as fsp, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { descendants, exists, isAlive, run, runOk, sleep, type ExecResult } from './exec.js';
import { makeTestPki } from './tls.js';

export type { ExecResult } from './exec.js';

export interface ListedImage {
  fingerprint: string;
  aliases: string[];
  type: string;
  architecture: string;
  description: string;
  size: number;
  raw: unknown;
}

export interface SshOptions {
  /** Use this private key file instead of the authorised one (e.g. to check a rejection). */
  privateKeyFile?: string;
  /** Written to the remote command's stdin. */
  input?: string | Buffer;
  timeoutMs?: number;
}

export interface Registry {
  root: string;
  host: string;
  sshPort: number;
  username: string;
  privateKey: string;
  hostKeyFingerprint: string;
  knownHostsLine: string;
  uploadDir: string;
  simplestreamsDir: string;
  httpsUrl: string;
  caFile: string;
  /** Extras beyond the brief: files and logs, useful for baselines and debugging. */
  privateKeyFile: string;
  knownHostsFile: string;
  sshdLogFile: string;
  nginxErrorLogFile: string;
  clientEnv(): NodeJS.ProcessEnv;
  incusList(): Promise<ListedImage[]>;
  lxcList(): Promise<ListedImage[]>;
  incusImageInfo(ref: string): Promise<string>;
  simplestreams(args: string[]): Promise<ExecResult>;
  ssh(command: string, opts?: SshOptions): Promise<ExecResult>;
  /** Upload with OpenSSH scp (SFTP protocol) to an absolute remote path. */
  scp(
    localPath: string,
    remotePath: string,
    opts?: Pick<SshOptions, 'privateKeyFile' | 'timeoutMs'>,
  ): Promise<ExecResult>;
  /** `-o` options shared by ssh and scp (identity, known_hosts pinning, batch mode), without the port. */
  sshOptions(privateKeyFile?: string): string[];
  /** pids of sshd, nginx and all their live descendants (workers, sessions). */
  pids(): number[];
  /**
   * Restarts sshd as a service manager would: the listener stops (sessions already open go on)
   * and a new one starts on the same port; resolves once it answers.
   */
  restartSshd(): Promise<void>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

/** The nginx server block of the server guide (docs/server-setup.md), with __PLACEHOLDERS__. */
export const NGINX_SERVER_BLOCK = fileURLToPath(new URL('../../docs/nginx/lxc-registry.conf', import.meta.url));

/** Fills in the guide's placeholders (__LISTEN__ and so on); fails if one is left unfilled. */
export function renderServerBlock(template: string, values: Record<string, string>): string {
  const text = template.replace(/__([A-Z_]+)__/g, (whole, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for ${whole} in ${NGINX_SERVER_BLOCK}`);
    return value;
  });
  return text.trimEnd() + '\n';
}
const REMOTE = 'harness';
const START_TIMEOUT_MS = 15_000;

export interface Daemon {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: () => boolean;
  logFile: string;
}

// Last-resort cleanup if a test process exits without calling stop().
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of liveGroups) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function spawnDaemon(
  name: string,
  cmd: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Daemon {
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`failed to spawn ${cmd}`);
  let done = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      liveGroups.delete(child.pid!);
      resolve();
    });
    child.once('error', () => {
      done = true;
      resolve();
    });
  });
  child.unref();
  liveGroups.add(child.pid);
  installExitHook();
  return { name, child, pid: child.pid, exited, hasExited: () => done, logFile };
}

export function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

class EarlyExit extends Error {}

/** Polls probe() until it resolves true; fails if the daemon dies or the deadline passes. */
export async function waitReady(d: Daemon, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (d.hasExited()) throw new EarlyExit(`${d.name} exited during start:\n${readLog(d.logFile)}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`${d.name} not ready after ${START_TIMEOUT_MS} ms:\n${readLog(d.logFile)}`);
    await sleep(15);
  }
}

function sshBannerProbe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    let buf = '';
    const finish = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => finish(false));
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      if (buf.includes('\n')) finish(buf.startsWith('SSH-2.0-'));
    });
  });
}

export function httpsProbe(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: HOST, port, path: '/', ca, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(typeof res.statusCode === 'number');
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

export async function terminate(daemons: Daemon[]): Promise<void> {
  const all = new Map<number, Daemon | undefined>();
  for (const d of daemons) {
    if (d.hasExited()) continue;
    d.child.ref(); // keep the event loop alive while we wait for it
    for (const p of descendants(d.pid)) all.set(p, undefined);
    all.set(d.pid, d);
  }
  const signal = (sig: NodeJS.Signals) => {
    for (const d of daemons) {
      if (!d.hasExited()) {
        try {
          process.kill(-d.pid, sig);
        } catch {
          // group gone
        }
      }
    }
    for (const [pid, d] of all) {
      if (d ? d.hasExited() : !isAlive(pid)) continue;
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  };
  const allGone = () => [...all].every(([pid, d]) => (d ? d.hasExited() : !isAlive(pid)));
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (!allGone() && Date.now() < deadline) await sleep(10);
    return allGone();
  };
  signal('SIGTERM');
  if (!(await waitGone(3000))) {
    signal('SIGKILL');
    await waitGone(3000);
  }
  await Promise.all(daemons.map((d) => Promise.race([d.exited, sleep(1000)])));
}

/** A string field of the clients' JSON ('' when absent). */
const text = (value: unknown): string => (typeof value === 'string' || typeof value === 'number' ? String(value) : '');

function parseListed(stdout: string): ListedImage[] {
  const data: unknown = JSON.parse(stdout);
  if (!Array.isArray(data)) throw new Error(`unexpected image list output: ${stdout.slice(0, 200)}`);
  return data.map((raw: Record<string, unknown>) => {
    const props = (raw.properties ?? {}) as Record<string, unknown>;
    const aliases = Array.isArray(raw.aliases) ? (raw.aliases as Array<{ name?: unknown }>) : [];
    return {
      fingerprint: text(raw.fingerprint),
      aliases: aliases.map((a) => text(a.name)),
      type: text(raw.type),
      architecture: text(raw.architecture),
      description: text(props.description),
      size: Number(raw.size ?? 0),
      raw,
    };
  });
}

/** Config options given by the caller come first (sshd keeps the first value of most keywords);
 *  a trailing `Match` section, if any, goes after the defaults. */
function splitExtraConfig(extra: string | undefined): { head: string; tail: string } {
  if (!extra) return { head: '', tail: '' };
  const lines = extra.split(/\r?\n/);
  const i = lines.findIndex((l) => /^\s*Match\s/i.test(l));
  if (i < 0) return { head: extra.trimEnd() + '\n', tail: '' };
  return {
    head: lines.slice(0, i).join('\n').trimEnd() + '\n',
    tail: lines.slice(i).join('\n').trimEnd() + '\n',
  };
}

const PUBLISHING_USER = 'lxcpublish';

/** Creates the publishing user once per machine (useradd exits 9 when another run just did it). */
async function ensurePublishingUser(): Promise<string> {
  if ((await run('id', ['-u', PUBLISHING_USER])).code !== 0) {
    const result = await run('useradd', ['--create-home', '--shell', '/bin/bash', PUBLISHING_USER]);
    if (result.code !== 0 && result.code !== 9) throw new Error(`useradd failed: ${result.stderr}`);
  }
  // useradd locks the password ("!"), and sshd without PAM refuses locked accounts even with a
  // key: "*" means no password login, but not locked.
  await runOk('usermod', ['-p', '*', PUBLISHING_USER]);
  return PUBLISHING_USER;
}

/** Whether this sshd knows an option (PerSourcePenalties exists from OpenSSH 9.8 on). */
async function sshdSupports(option: string): Promise<boolean> {
  const result = await run('/usr/sbin/sshd', ['-G', '-f', '/dev/null', '-o', option]);
  return result.code === 0;
}

export async function startRegistry(options: { sshExtraConfig?: string } = {}): Promise<Registry> {
  const root = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-registry-')));
  const isRoot = process.getuid?.() === 0;
  // As root, publish as a dedicated user, as a registry server would have: it owns only the
  // registry directories, and logs in with a stock shell setup (root's own may be slow to start).
  const username = isRoot ? await ensurePublishingUser() : os.userInfo().username;
  const dirs = {
    ssh: path.join(root, 'ssh'),
    logs: path.join(root, 'logs'),
    run: path.join(root, 'run'),
    nginx: path.join(root, 'nginx'),
    tls: path.join(root, 'tls'),
    clientHome: path.join(root, 'client-home'),
    incusConf: path.join(root, 'incus-conf'),
    lxdConf: path.join(root, 'lxd-conf'),
  };
  const uploadDir = path.join(root, 'srv', 'lxc', 'uploads');
  const simplestreamsDir = path.join(root, 'srv', 'lxc', 'simplestreams');
  const daemons: Daemon[] = [];

  try {
    await Promise.all(
      [...Object.values(dirs), uploadDir, simplestreamsDir, path.join(dirs.nginx, 'tmp')].map((d) =>
        fsp.mkdir(d, { recursive: true, mode: 0o755 }),
      ),
    );
    if (isRoot) {
      await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // privsep chroot
      await fsp.chmod(root, 0o755); // mkdtemp makes it 0700; the publishing user must get through
      await runOk('chown', ['-R', `${username}:`, path.join(root, 'srv')]);
    }

    const hostKey = path.join(dirs.ssh, 'ssh_host_ed25519_key');
    const clientKey = path.join(dirs.ssh, 'id_ed25519');
    const keygen = (file: string, comment: string) =>
      runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
    const [, , pki] = await Promise.all([
      keygen(hostKey, 'lxc-publish-test-host'),
      keygen(clientKey, 'lxc-publish-test-client'),
      makeTestPki(dirs.tls),
    ]);

    const [hostPub, clientPub, privateKey, fpOut] = await Promise.all([
      fsp.readFile(`${hostKey}.pub`, 'utf8'),
      fsp.readFile(`${clientKey}.pub`, 'utf8'),
      fsp.readFile(clientKey, 'utf8'),
      runOk('ssh-keygen', ['-l', '-f', `${hostKey}.pub`]),
    ]);
    const hostKeyFingerprint = fpOut.stdout.trim().split(/\s+/)[1] ?? '';
    if (!hostKeyFingerprint.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -l output: ${fpOut.stdout}`);
    const authorizedKeys = path.join(dirs.ssh, 'authorized_keys');
    await fsp.writeFile(authorizedKeys, clientPub, { mode: 0o600 });
    // sshd reads it with the user's own rights.
    if (isRoot) await runOk('chown', [`${username}:`, authorizedKeys]);
    const hostKeyText = hostPub.trim().split(/\s+/).slice(0, 2).join(' ');

    // --- sshd -------------------------------------------------------------------------------
    const sshdConfig = path.join(dirs.ssh, 'sshd_config');
    const sshdLogFile = path.join(dirs.logs, 'sshd.log');
    const spawnSshd = () => spawnDaemon('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig], sshdLogFile);
    /** Process groups of listeners stopped by restartSshd: their sessions are killed at stop(). */
    const stoppedListeners: number[] = [];
    const extra = splitExtraConfig(options.sshExtraConfig);
    let sshPort = 0;
    for (let attempt = 0; ; attempt++) {
      sshPort = await freePort();
      await fsp.writeFile(
        sshdConfig,
        [
          extra.head,
          `Port ${sshPort}`,
          `ListenAddress ${HOST}`,
          `HostKey ${hostKey}`,
          `PidFile ${path.join(dirs.run, 'sshd.pid')}`,
          `AuthorizedKeysFile ${authorizedKeys}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PermitRootLogin prohibit-password',
          'StrictModes no',
          'UsePAM no',
          'Subsystem sftp internal-sftp',
          'MaxStartups 100:30:200',
          'MaxSessions 50',
          // OpenSSH >= 9.8 penalises sources for failed/aborted logins and would then refuse
          // 127.0.0.1 (readiness probes and rejection tests count): off for tests.
          (await sshdSupports('PerSourcePenalties=no')) ? 'PerSourcePenalties no' : '',
          'LogLevel ERROR',
          extra.tail,
        ].join('\n'),
      );
      const sshd = spawnSshd();
      daemons.push(sshd);
      try {
        await waitReady(sshd, () => sshBannerProbe(sshPort));
        break;
      } catch (e) {
        daemons.pop();
        await terminate([sshd]);
        if (!(e instanceof EarlyExit) || !/in use/i.test(e.message) || attempt >= 4) throw e;
      }
    }
    const knownHostsLine = `[${HOST}]:${sshPort} ${hostKeyText}`;
    const knownHostsFile = path.join(dirs.ssh, 'known_hosts');
    await fsp.writeFile(knownHostsFile, knownHostsLine + '\n');

    // --- nginx ------------------------------------------------------------------------------
    const caPem = await fsp.readFile(pki.caFile, 'utf8');
    const serverBlockTemplate = await fsp.readFile(NGINX_SERVER_BLOCK, 'utf8');
    const nginxConf = path.join(dirs.nginx, 'nginx.conf');
    const nginxErrorLogFile = path.join(dirs.logs, 'nginx-error.log');
    const tmp = path.join(dirs.nginx, 'tmp');
    let httpsPort = 0;
    for (let attempt = 0; ; attempt++) {
      httpsPort = await freePort();
      await fsp.writeFile(
        nginxConf,
        [
          'daemon off;',
          'master_process on;',
          'worker_processes 1;',
          isRoot ? 'user root;' : '',
          `pid ${path.join(dirs.run, 'nginx.pid')};`,
          `error_log ${nginxErrorLogFile} warn;`,
          'events { worker_connections 512; }',
          'http {',
          `  access_log ${path.join(dirs.logs, 'nginx-access.log')};`,
          `  client_body_temp_path ${tmp}/client_body;`,
          `  proxy_temp_path ${tmp}/proxy;`,
          `  fastcgi_temp_path ${tmp}/fastcgi;`,
          `  uwsgi_temp_path ${tmp}/uwsgi;`,
          `  scgi_temp_path ${tmp}/scgi;`,
          // The server block is the one docs/server-setup.md gives, placeholders filled in.
          renderServerBlock(serverBlockTemplate, {
            LISTEN: `${HOST}:${httpsPort}`,
            SERVER_NAME: HOST,
            ROOT: simplestreamsDir,
            CERT: pki.certFile,
            KEY: pki.keyFile,
          }).replace(/^(?=.)/gm, '  '),
          '}',
          '',
        ].join('\n'),
      );
      // -e: the compiled-in error log (/var/log/nginx) is opened before the config is read.
      const nginx = spawnDaemon(
        'nginx',
        '/usr/sbin/nginx',
        ['-p', `${dirs.nginx}/`, '-e', nginxErrorLogFile, '-c', nginxConf],
        path.join(dirs.logs, 'nginx.out'),
      );
      daemons.push(nginx);
      try {
        await waitReady(nginx, () => httpsProbe(httpsPort, caPem));
        break;
      } catch (e) {
        daemons.pop();
        await terminate([nginx]);
        const msg = e instanceof Error ? `${e.message}\n${readLog(nginxErrorLogFile)}` : '';
        if (!(e instanceof EarlyExit) || !/in use/i.test(msg) || attempt >= 4) {
          throw new Error(`${msg}`);
        }
      }
    }
    const httpsUrl = `https://${HOST}:${httpsPort}`;

    // --- clients ----------------------------------------------------------------------------
    const clientEnv = (): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        HOME: dirs.clientHome,
        INCUS_CONF: dirs.incusConf,
        LXD_CONF: dirs.lxdConf,
        SSL_CERT_FILE: pki.caFile,
      };
      delete env.SSL_CERT_DIR;
      delete env.XDG_CACHE_HOME;
      delete env.XDG_CONFIG_HOME;
      return env;
    };
    // The incus client caches index.json/images.json under $HOME/.cache/incus: drop it before
    // each query so tests see what the server serves now.
    const dropClientCache = () => fsp.rm(path.join(dirs.clientHome, '.cache'), { recursive: true, force: true });
    const remotes = new Map<string, Promise<void>>();
    const ensureRemote = (bin: 'incus' | 'lxc'): Promise<void> => {
      let p = remotes.get(bin);
      if (!p) {
        p = runOk(bin, ['remote', 'add', REMOTE, httpsUrl, '--protocol=simplestreams', '--public'], {
          env: clientEnv(),
        }).then(() => undefined);
        p.catch(() => remotes.delete(bin));
        remotes.set(bin, p);
      }
      return p;
    };
    const streamExists = () => exists(path.join(simplestreamsDir, 'streams', 'v1', 'index.json'));
    const list = async (bin: 'incus' | 'lxc'): Promise<ListedImage[]> => {
      await ensureRemote(bin);
      // Nothing published yet: the clients fail with a 404 on streams/v1/index.json.
      if (!(await streamExists())) return [];
      await dropClientCache();
      const r = await runOk(bin, ['image', 'list', `${REMOTE}:`, '--format', 'json'], {
        env: clientEnv(),
      });
      return parseListed(r.stdout);
    };

    const privateKeyFile = clientKey;
    const sshOptions = (keyFile: string = privateKeyFile): string[] => [
      '-F',
      '/dev/null',
      '-i',
      keyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      '-o',
      'BatchMode=yes',
      '-o',
      'PasswordAuthentication=no',
      '-o',
      'KbdInteractiveAuthentication=no',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${knownHostsFile}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'HostKeyAlgorithms=ssh-ed25519',
      '-o',
      'UpdateHostKeys=no',
      '-o',
      'ControlMaster=no',
      '-o',
      'ControlPath=none',
      '-o',
      'ConnectTimeout=10',
      '-o',
      'LogLevel=ERROR',
    ];

    let stopping: Promise<void> | undefined;
    const registry: Registry = {
      root,
      host: HOST,
      sshPort,
      username,
      privateKey,
      hostKeyFingerprint,
      knownHostsLine,
      uploadDir,
      simplestreamsDir,
      httpsUrl,
      caFile: pki.caFile,
      privateKeyFile,
      knownHostsFile,
      sshdLogFile,
      nginxErrorLogFile,
      clientEnv,
      incusList: () => list('incus'),
      // LXD reads only lxd.tar.xz / lxd_combined.tar.gz items: [] for a plain incus-simplestreams tree.
      lxcList: () => list('lxc'),
      async incusImageInfo(ref: string): Promise<string> {
        await ensureRemote('incus');
        await dropClientCache();
        const r = await runOk('incus', ['image', 'info', `${REMOTE}:${ref}`], { env: clientEnv() });
        return r.stdout;
      },
      simplestreams: (args: string[]) =>
        run('incus-simplestreams', args, {
          cwd: simplestreamsDir,
          env: { ...process.env, TZ: 'UTC' },
        }),
      ssh: (command: string, opts: SshOptions = {}) =>
        run('ssh', ['-p', String(sshPort), ...sshOptions(opts.privateKeyFile), '-T', `${username}@${HOST}`, command], {
          input: opts.input,
          timeoutMs: opts.timeoutMs ?? 120_000,
        }),
      scp: (localPath: string, remotePath: string, opts = {}) =>
        run(
          'scp',
          [
            '-q',
            '-P',
            String(sshPort),
            ...sshOptions(opts.privateKeyFile),
            '--',
            localPath,
            `${username}@${HOST}:${remotePath}`,
          ],
          { timeoutMs: opts.timeoutMs ?? 300_000 },
        ),
      sshOptions,
      pids: () => daemons.filter((d) => !d.hasExited()).flatMap((d) => [d.pid, ...descendants(d.pid)]),
      async restartSshd(): Promise<void> {
        const index = daemons.findIndex((d) => d.name === 'sshd' && !d.hasExited());
        const old = daemons[index];
        if (!old) throw new Error('sshd is not running');
        process.kill(old.pid, 'SIGTERM');
        await old.exited;
        stoppedListeners.push(old.pid);
        const sshd = spawnSshd();
        daemons[index] = sshd;
        await waitReady(sshd, () => sshBannerProbe(sshPort));
      },
      stop(): Promise<void> {
        stopping ??= (async () => {
          for (const group of stoppedListeners) {
            try {
              process.kill(-group, 'SIGKILL');
            } catch {
              // no session left
            }
          }
          await terminate(daemons);
          await fsp.rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
        })();
        return stopping;
      },
    };
    return registry;
  } catch (e) {
    await terminate(daemons).catch(() => undefined);
    if (!process.env.HARNESS_KEEP_TMP) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * A shell condition, true while a commit runs on this registry: other registries on the machine
 * (another test file's, another suite's) commit too. The script's name ($0) is followed by its
 * state directory, under simplestreams-dir.
 */
export function commitRunsOn(registry: Pick<Registry, 'simplestreamsDir'>): string {
  return `pgrep -f 'lxc-publish-[c]ommit ${registry.simplestreamsDir}/'`;
}
