// Real Incus and LXD daemons for integration tests: incusd (Incus 6.0, bookworm-backports) and lxd
// (LXD 5.0, bookworm) started as background processes, each with a state directory, a client
// configuration and a log of its own in one fresh temp dir, so nothing of the machine's own
// /var/lib/incus or /var/lib/lxd is used or changed. They trust the registry's test CA through
// SSL_CERT_FILE (the system bundle plus that CA), so the system store is left alone. stop()
// deletes the instances and images the tests made, shuts both daemons down and removes the dir.
import { randomBytes } from 'node:crypto';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exists, isAlive, run, sleep, type ExecResult } from './exec.js';
import { readLog, spawnDaemon, terminate, type Daemon } from './registry.js';

export type DaemonKind = 'incus' | 'lxd';

const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const DIR_PREFIX = 'lxc-publish-daemons-';
const OWNER_FILE = 'owner.pid';
const SOCKET_TIMEOUT_S = 60;
const LOG_TAIL_LINES = 30;

interface Flavour {
  /** The daemon as messages name it. */
  daemon: string;
  program: string;
  client: 'incus' | 'lxc';
  dirVar: 'INCUS_DIR' | 'LXD_DIR';
  confVar: 'INCUS_CONF' | 'LXD_CONF';
  /** The admin command (preseed, waitready, shutdown) and its leading arguments. */
  admin: [string, ...string[]];
}

const FLAVOURS: Record<DaemonKind, Flavour> = {
  incus: {
    daemon: 'incusd',
    program: '/usr/libexec/incus/incusd',
    client: 'incus',
    dirVar: 'INCUS_DIR',
    confVar: 'INCUS_CONF',
    admin: ['incus', 'admin'],
  },
  lxd: {
    daemon: 'lxd',
    program: '/usr/bin/lxd',
    client: 'lxc',
    dirVar: 'LXD_DIR',
    confVar: 'LXD_CONF',
    admin: ['lxd'],
  },
};

export interface ContainerDaemon {
  kind: DaemonKind;
  /** incusd or lxd. */
  daemon: string;
  /** The command-line client that talks to it: incus or lxc. */
  client: 'incus' | 'lxc';
  /** The daemon's state directory (INCUS_DIR / LXD_DIR). */
  dir: string;
  logFile: string;
  pid: number;
  /** server_version as the daemon reports it on its socket. */
  version: string;
  /** The client's environment: this daemon's socket, a config dir of its own, the CA bundle. */
  env: NodeJS.ProcessEnv;
  /** Runs the client with these arguments against this daemon; never rejects on a non-zero exit. */
  cli(args: string[], timeoutMs?: number): Promise<ExecResult>;
  /** Like cli() but fails, naming the command and quoting the daemon's log, on a non-zero exit. */
  cliOk(args: string[], timeoutMs?: number): Promise<ExecResult>;
  /** Adds a simplestreams remote under a name used once, and returns the name. */
  addRemote(url: string): Promise<string>;
  /** `launch image name` under a fresh instance name (returned); stop() deletes it. */
  launch(image: string): Promise<string>;
  /** Waits until `exec name -- cat file` succeeds and returns what it printed. */
  readFileIn(name: string, file: string, timeoutMs?: number): Promise<string>;
  /** `config get name key`, trimmed. */
  configGet(name: string, key: string): Promise<string>;
  /** Deletes an instance (forced) and forgets it. */
  deleteInstance(name: string): Promise<void>;
  /** Fingerprints of the images in the daemon's local store. */
  localImages(): Promise<string[]>;
  /** The end of the daemon's log, for failure messages. */
  logTail(): string;
  /**
   * Shuts the daemon down (admin shutdown, waiting for it to exit), clears its cached remote
   * indexes (cache/<hash>/ under its state dir: kept for about an hour otherwise) and
   * starts it again with the same environment and state. Instances and images stay; starting
   * also runs the auto-update of images copied with --auto-update.
   */
  restart(): Promise<void>;
}

export interface Daemons {
  root: string;
  /** The CA bundle both daemons and their clients use: the system bundle plus the test CA. */
  caBundle: string;
  incus: ContainerDaemon;
  lxd: ContainerDaemon;
  stop(): Promise<void>;
}

function tail(file: string, lines = LOG_TAIL_LINES): string {
  const text = readLog(file);
  return text ? text.split('\n').slice(-lines).join('\n') : '(empty)';
}

/**
 * A URL for the registry at `httpsUrl` that no daemon has seen yet. Both daemons cache a remote's
 * index for about an hour, keyed by the remote's URL as given; `/fresh-<id>/..` makes the URL new,
 * and the clients resolve the `..` before they send a request, so nginx sees the same paths.
 */
export function freshRemoteUrl(httpsUrl: string): string {
  return `${httpsUrl}/${freshPrefix()}/..`;
}

function freshPrefix(): string {
  return `fresh-${randomBytes(6).toString('hex')}`;
}

/** Mount points under dir (deepest first), from /proc/self/mountinfo. */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .map((line) => decode(line.split(' ')[4] ?? ''))
    .filter((mountPoint) => mountPoint.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts whatever a daemon left mounted under dir, then removes dir. */
async function removeStateDir(dir: string): Promise<void> {
  for (const mountPoint of await mountsUnder(dir)) await run('umount', ['-l', mountPoint]);
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new Error(`cannot remove ${dir}: still mounted: ${left.join(', ')}`);
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

interface RunningDaemon {
  pid: number;
  program: string;
  stateDir: string | undefined;
}

/** incusd and lxd processes on this machine, with the state dir each was started with. */
function runningDaemons(): RunningDaemon[] {
  const found: RunningDaemon[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
      const program = Object.values(FLAVOURS).find((f) => argv0 === f.program || path.basename(argv0) === f.daemon);
      if (!program || !isAlive(pid)) continue;
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      const dirLine = environ.find((entry) => entry.startsWith(`${program.dirVar}=`));
      found.push({ pid, program: program.daemon, stateDir: dirLine?.slice(program.dirVar.length + 1) });
    } catch {
      // gone while scanning, or not ours to read
    }
  }
  return found;
}

/**
 * Daemons left by an earlier run of this harness that died before stop(): their temp dir names
 * an owner process that no longer exists. They are shut down and their dirs removed. A daemon
 * whose owner still runs (another test run) is left alone, and so are daemons the harness did not
 * start (e.g. the machine's own incusd on /var/lib/incus): they use other state dirs and sockets.
 */
async function reapLeftovers(): Promise<void> {
  const tmp = await fsp.realpath(os.tmpdir());
  const seen = new Set<string>();
  for (const leftover of runningDaemons()) {
    const stateDir = leftover.stateDir;
    if (!stateDir || !stateDir.startsWith(path.join(tmp, DIR_PREFIX)) || seen.has(stateDir)) continue;
    seen.add(stateDir);
    const root = path.dirname(stateDir);
    const owner = Number(await fsp.readFile(path.join(root, OWNER_FILE), 'utf8').catch(() => '0'));
    if (owner > 0 && owner !== process.pid && isAlive(owner)) continue;
    const flavour = Object.values(FLAVOURS).find((f) => f.daemon === leftover.program)!;
    const env = { ...process.env, [flavour.dirVar]: stateDir };
    await run(flavour.admin[0], [...flavour.admin.slice(1), 'shutdown', '--timeout', '30'], { env, timeoutMs: 40_000 });
    for (let i = 0; i < 50 && isAlive(leftover.pid); i++) await sleep(100);
    // The harness starts each daemon in a process group of its own: kill the group (helpers too).
    for (const target of [-leftover.pid, leftover.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await removeStateDir(root);
  }
}

/** The system CA bundle followed by the test CA, for SSL_CERT_FILE. */
async function writeCaBundle(file: string, caFile: string): Promise<void> {
  const system = await fsp.readFile(SYSTEM_CA_BUNDLE, 'utf8').catch(() => '');
  const ca = await fsp.readFile(caFile, 'utf8');
  await fsp.writeFile(file, `${system.trimEnd()}\n${ca.trimEnd()}\n`);
}

const POOL = 'default';

function preseedYaml(withPool: boolean): string {
  // Storage only: no network (the default bridge needs a free subnet, and the tests need none).
  return [
    ...(withPool ? ['storage_pools:', `- name: ${POOL}`, '  driver: dir'] : []),
    'profiles:',
    '- name: default',
    '  devices:',
    '    root:',
    '      path: /',
    `      pool: ${POOL}`,
    '      type: disk',
    '',
  ].join('\n');
}

async function startOne(kind: DaemonKind, root: string, caBundle: string): Promise<ContainerDaemon> {
  const f = FLAVOURS[kind];
  const dir = path.join(root, kind);
  const conf = path.join(root, `${kind}-conf`);
  const home = path.join(root, `${kind}-home`);
  const logFile = path.join(root, `${f.daemon}.log`);
  await Promise.all([dir, conf, home].map((d) => fsp.mkdir(d, { recursive: true, mode: 0o755 })));
  if (!(await exists(f.program))) {
    throw new Error(`${f.program} is missing: install ${kind} (.ci/install-system-packages.sh)`);
  }

  const daemonEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: home,
    [f.dirVar]: dir,
    SSL_CERT_FILE: caBundle,
  };
  const env: NodeJS.ProcessEnv = { ...daemonEnv, [f.confVar]: conf };
  const spawn = () => spawnDaemon(f.daemon, f.program, ['--group', 'root'], logFile, daemonEnv);
  const proc: Daemon = spawn();
  try {
    return await setUp(kind, proc, env, logFile, spawn);
  } catch (e) {
    await terminate([proc]);
    throw e;
  }
}

async function setUp(
  kind: DaemonKind,
  started: Daemon,
  env: NodeJS.ProcessEnv,
  logFile: string,
  spawn: () => Daemon,
): Promise<ContainerDaemon> {
  const f = FLAVOURS[kind];
  const dir = env[f.dirVar]!;
  const log = () => `\nlog (${logFile}):\n${tail(logFile)}`;
  let proc = started;

  const socket = path.join(dir, 'unix.socket');
  const admin = (args: string[], input?: string) =>
    run(f.admin[0], [...f.admin.slice(1), ...args], { env, input, timeoutMs: SOCKET_TIMEOUT_S * 1000 + 10_000 });
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + SOCKET_TIMEOUT_S * 1000;
    while (!(await exists(socket))) {
      if (proc.hasExited()) throw new Error(`${f.daemon} exited before opening its socket ${socket}${log()}`);
      if (Date.now() > deadline) {
        throw new Error(`${f.daemon} did not open its socket ${socket} within ${SOCKET_TIMEOUT_S} s${log()}`);
      }
      await sleep(50);
    }
    const ready = await admin(['waitready', '--timeout', String(SOCKET_TIMEOUT_S)]);
    if (ready.code !== 0) {
      throw new Error(
        `${f.daemon} opened its socket but was not ready within ${SOCKET_TIMEOUT_S} s: ${ready.stderr}${log()}`,
      );
    }
  };
  await waitReady();

  const cli = (args: string[], timeoutMs = 120_000) => run(f.client, args, { env, timeoutMs });
  const cliOk = async (args: string[], timeoutMs?: number) => {
    const result = await cli(args, timeoutMs);
    if (result.code !== 0) {
      throw new Error(
        `${f.client} ${args.join(' ')} exited with ${result.code} (${f.daemon}): ${result.stderr.trim()}${log()}`,
      );
    }
    return result;
  };

  const server = await cli(['query', '/1.0']);
  let version = '';
  try {
    const reported = (JSON.parse(server.stdout) as { environment?: { server_version?: unknown } }).environment
      ?.server_version;
    version = typeof reported === 'string' ? reported : '';
  } catch {
    // reported below
  }
  if (server.code !== 0 || !version) {
    throw new Error(
      `${f.daemon} answered ${f.client} query /1.0 with no server version: ${server.stderr}${server.stdout}${log()}`,
    );
  }

  // Storage pool and default profile; a pool that exists already is kept (idempotent).
  const pools = await cliOk(['storage', 'list', '--format', 'json']);
  const hasPool = (JSON.parse(pools.stdout) as Array<{ name?: string }>).some((p) => p.name === POOL);
  const preseed = await admin(['init', '--preseed'], preseedYaml(!hasPool));
  if (preseed.code !== 0) {
    throw new Error(`${f.daemon}: init --preseed (dir pool "${POOL}", no network) failed: ${preseed.stderr}${log()}`);
  }

  const instances = new Set<string>();
  let remotes = 0;
  const d: ContainerDaemon = {
    kind,
    daemon: f.daemon,
    client: f.client,
    dir,
    logFile,
    pid: proc.pid,
    version,
    env,
    cli,
    cliOk,
    async addRemote(url: string): Promise<string> {
      const name = `r${++remotes}-${randomBytes(3).toString('hex')}`;
      await cliOk(['remote', 'add', name, url, '--protocol=simplestreams', '--public']);
      return name;
    },
    async launch(image: string): Promise<string> {
      const name = `c-${kind}-${randomBytes(4).toString('hex')}`;
      instances.add(name);
      await cliOk(['launch', image, name], 180_000);
      return name;
    },
    async readFileIn(name: string, file: string, timeoutMs = 30_000): Promise<string> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const result = await cli(['exec', name, '--', 'cat', file], 30_000);
        if (result.code === 0) return result.stdout;
        if (Date.now() > until) {
          throw new Error(
            `${f.client} exec ${name} -- cat ${file} still failing after ${timeoutMs / 1000} s (exit ${result.code}): ${result.stderr.trim()}${log()}`,
          );
        }
        await sleep(200);
      }
    },
    async configGet(name: string, key: string): Promise<string> {
      return (await cliOk(['config', 'get', name, key])).stdout.trim();
    },
    async deleteInstance(name: string): Promise<void> {
      await cliOk(['delete', '--force', name]);
      instances.delete(name);
    },
    async localImages(): Promise<string[]> {
      const list = JSON.parse((await cliOk(['image', 'list', '--format', 'json'])).stdout) as Array<{
        fingerprint?: string;
      }>;
      return list.map((image) => String(image.fingerprint ?? ''));
    },
    logTail: () => tail(logFile),
    async restart(): Promise<void> {
      const shutdown = await admin(['shutdown', '--timeout', '60']);
      for (let waited = 0; waited < 20_000 && !proc.hasExited(); waited += 50) await sleep(50);
      if (!proc.hasExited()) {
        throw new Error(`${f.daemon} still ran 20 s after shutdown (${shutdown.stderr.trim()})${log()}`);
      }
      // Each remote's cached index.json and images.json sit in cache/<sha256 of the remote>/.
      const cache = path.join(dir, 'cache');
      for (const name of await fsp.readdir(cache).catch(() => [])) {
        if (/^[0-9a-f]{64}$/.test(name)) await fsp.rm(path.join(cache, name), { recursive: true, force: true });
      }
      proc = spawn();
      d.pid = proc.pid;
      await waitReady();
    },
  };
  stoppers.set(d, async () => {
    const problems: string[] = [];
    if (!proc.hasExited()) {
      for (const name of instances) {
        const result = await cli(['delete', '--force', name]);
        if (result.code !== 0) problems.push(`${f.client} delete --force ${name}: ${result.stderr.trim()}`);
      }
      for (const fingerprint of await d.localImages().catch(() => [])) {
        const result = await cli(['image', 'delete', fingerprint]);
        if (result.code !== 0) problems.push(`${f.client} image delete ${fingerprint}: ${result.stderr.trim()}`);
      }
      const shutdown = await admin(['shutdown', '--timeout', '30']);
      if (shutdown.code !== 0) problems.push(`${f.admin.join(' ')} shutdown: ${shutdown.stderr.trim()}`);
      for (let waited = 0; waited < 10_000 && !proc.hasExited(); waited += 50) await sleep(50);
      if (!proc.hasExited()) problems.push(`${f.daemon} still ran 10 s after shutdown: killed`);
    }
    // Leftovers: forkexec helpers, a daemon that did not stop.
    await terminate([proc]);
    return problems;
  });
  return d;
}

const stoppers = new WeakMap<ContainerDaemon, () => Promise<string[]>>();

/**
 * Starts incusd and lxd (once per test file) trusting the CA in `caFile` (the registry's).
 * Both get their own state dir under one temp dir, with a `dir` storage pool and no network.
 */
export async function startDaemons(caFile: string): Promise<Daemons> {
  await reapLeftovers();
  const root = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), DIR_PREFIX)));
  // Containers run as mapped ids and must get through to their rootfs under this dir.
  await fsp.chmod(root, 0o755);
  await fsp.writeFile(path.join(root, OWNER_FILE), String(process.pid));
  const caBundle = path.join(root, 'ca-bundle.pem');
  const started: ContainerDaemon[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const problems = (await Promise.all(started.map((d) => stoppers.get(d)!()))).flat();
      if (process.env['HARNESS_KEEP_TMP']) return;
      await removeStateDir(root).catch((e: unknown) => problems.push(String(e)));
      if (problems.length > 0) throw new Error(`stopping the daemons:\n${problems.join('\n')}`);
    })();
    return stopping;
  };
  try {
    await writeCaBundle(caBundle, caFile);
    // One after the other: on 2 cores two daemons starting at once only slow each other down.
    started.push(await startOne('incus', root, caBundle));
    started.push(await startOne('lxd', root, caBundle));
    return { root, caBundle, incus: started[0]!, lxd: started[1]!, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

/**
 * Stops what a daemon test started: the daemons, then the registry they fetched from, then the
 * work directory. Every step runs even when an earlier one fails; the first failure is thrown.
 */
export async function stopDaemonTest(started: {
  daemons: Daemons | undefined;
  registry: { stop(): Promise<void> } | undefined;
  work: string | undefined;
}): Promise<void> {
  const steps = [
    () => started.daemons?.stop(),
    () => started.registry?.stop(),
    () => (started.work ? fsp.rm(started.work, { recursive: true, force: true }) : undefined),
  ];
  const results: PromiseSettledResult<unknown>[] = [];
  for (const step of steps) results.push(...(await Promise.allSettled([step()])));
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
}
