// A randomized fault campaign against a harness registry (npm run chaos, and a short one in the
// tests): random publishes (new images, the same image again, other lines, with and without
// deltas and retention), alias moves and removals through the committed bundles, each through a
// TCP proxy of its own, with a fault injected at a random moment of most of them: the runner
// SIGKILLed, the link cut (the proxy killed), the link stalled past every timeout, sshd
// restarted, the disk full under upload-dir or under the registry (small tmpfs mounts), or a
// second writer holding the registry lock. After every step the invariants are checked
// (invariants.ts); the first violation stops the campaign with the seed, the step and the
// history. Everything random comes from the seed, so a campaign is replayed by its seed (the
// moments the faults land at are replayed; how far a run got by then depends on the machine).
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectionInputs, inputsFor, startEntry, type BundleRun, type Inputs } from './action.js';
import { run, runOk } from './exec.js';
import { makeSplitContainerImage, type TestImage } from './images.js';
import { checkInvariants } from './invariants.js';
import { startProxy, type TcpProxy } from './proxy.js';
import { startRegistry, type Registry } from './registry.js';
import { listImages } from '../../src/simplestreams/resolve.js';
import { parseImagesIndex } from '../../src/simplestreams/parse.js';

export const FAULT_KINDS = [
  'sigkill',
  'link-cut',
  'link-stall',
  'sshd-restart',
  'disk-full-upload',
  'disk-full-registry',
  'lock-held',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
type OperationKind = 'publish' | 'republish' | 'alias' | 'remove';

export interface CampaignOptions {
  seed: number;
  /** Stop once this many faults were injected. */
  faults: number;
  /** Stop after this long, whatever the count. */
  maxMinutes: number;
  /** At most this many link stalls (each costs a minute or more: the runner's keepalives). */
  maxStalls?: number;
  log?: (line: string) => void;
}

export interface Step {
  step: number;
  operation: string;
  fault: FaultKind | 'none';
  /** Milliseconds after the run started that the fault was injected. */
  faultAtMs?: number;
  exit: number;
  ms: number;
}

export interface CampaignReport {
  seed: number;
  steps: number;
  faults: Record<FaultKind, number>;
  operations: { completed: number; failed: number };
  violations: string[];
  /** The step that found the violation, and every step before it. */
  history: Step[];
  minutes: number;
}

/** mulberry32: a small seeded generator, enough to replay a campaign. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LINES = ['alpha', 'beta'] as const;
const VERSIONS = 4;
const DAY = 86400;
const FIRST = 1764547200; // 2025-12-01
/** Client→server pace of every link: a publish's upload then takes about a second. */
const UPLINK = 4 << 20;
const TMPFS = { upload: 48 << 20, registry: 96 << 20 };

interface World {
  registry: Registry;
  work: string;
  images: TestImage[];
}

async function mountTmpfs(dir: string, bytes: number, owner: string): Promise<void> {
  await runOk('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir]);
  await runOk('chown', [`${owner}:`, dir]);
}

async function setUp(log: (line: string) => void): Promise<World> {
  const registry = await startRegistry();
  await mountTmpfs(registry.uploadDir, TMPFS.upload, registry.username);
  await mountTmpfs(registry.simplestreamsDir, TMPFS.registry, registry.username);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-chaos-'));
  const images: TestImage[] = [];
  for (const line of LINES) {
    for (let version = 1; version <= VERSIONS; version++) {
      images.push(
        await makeSplitContainerImage(path.join(work, `${line}-${version}`), {
          os: 'chaos',
          release: 'bookworm',
          variant: line,
          creationDate: FIRST + version * DAY + LINES.indexOf(line) * 60,
          rootfsBytes: 3 << 20,
        }),
      );
    }
  }
  log(`registry ${registry.simplestreamsDir}, ${images.length} images of ${LINES.length} lines`);
  return { registry, work, images };
}

async function tearDown(world: World): Promise<void> {
  for (const dir of [world.registry.uploadDir, world.registry.simplestreamsDir]) {
    await runOk('umount', ['-l', dir]).catch(() => undefined);
  }
  await world.registry.stop();
  await fsp.rm(world.work, { recursive: true, force: true });
}

const lineOf = (image: TestImage) => image.variant;
const versionOf = (world: World, image: TestImage) =>
  world.images.filter((other) => other.variant === image.variant).indexOf(image) + 1;

/** The fingerprints the registry lists now. */
async function published(world: World): Promise<Set<string>> {
  const file = path.join(world.registry.simplestreamsDir, 'streams/v1/images.json');
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  if (text === '') return new Set();
  return new Set(listImages(parseImagesIndex(text)).map((image) => image.fingerprint));
}

interface Operation {
  name: string;
  kind: OperationKind;
  entry: string;
  inputs: (port: number) => Inputs;
}

async function chooseOperation(world: World, next: () => number): Promise<Operation> {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
  const live = [...(await published(world))];
  const liveImages = world.images.filter((image) => live.includes(image.fingerprint));
  const roll = next();
  const kind: OperationKind =
    liveImages.length === 0 || roll < 0.55 ? 'publish' : roll < 0.7 ? 'republish' : roll < 0.88 ? 'alias' : 'remove';
  const settings = { 'lock-timeout': '15', 'connect-timeout': '10' };
  const connection = (port: number, extra: Inputs) =>
    connectionInputs(world.registry, { port: String(port), ...settings, ...extra });
  if (kind === 'publish' || kind === 'republish') {
    const image = kind === 'publish' ? pick(world.images) : pick(liveImages);
    const keep = pick(['0', '0', '2', '3']);
    const deltas = pick(['0', '1']);
    const line = lineOf(image);
    const aliases = `chaos-${line}:v${versionOf(world, image)}, chaos-${line}:latest`;
    return {
      name: `${kind} ${line} v${versionOf(world, image)} keep-versions ${keep} delta-bases ${deltas}`,
      kind,
      entry: 'dist/index.js',
      inputs: (port) =>
        inputsFor(world.registry, image, {
          port: String(port),
          aliases,
          'keep-versions': keep,
          'delta-bases': deltas,
          ...settings,
        }),
    };
  }
  const image = pick(liveImages);
  const line = lineOf(image);
  if (kind === 'alias') {
    return {
      name: `alias chaos-${line}:latest → ${line} v${versionOf(world, image)}`,
      kind,
      entry: 'dist/alias/index.js',
      inputs: (port) => connection(port, { fingerprint: image.fingerprint, aliases: `chaos-${line}:latest` }),
    };
  }
  return {
    name: `remove ${line} v${versionOf(world, image)}`,
    kind,
    entry: 'dist/remove/index.js',
    // force: the release may hold chaos-<line>:latest, which clients follow.
    inputs: (port) => connection(port, { fingerprint: image.fingerprint, force: 'true' }),
  };
}

/** A fault under way: injected by `start`, undone by `stop` once the run has ended. */
interface Fault {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Fills the file system holding `dir` to the last byte, as root. */
function diskFull(dir: string): Fault {
  const filler = path.join(dir, `.chaos-filler-${process.pid}`);
  return {
    start: async () => {
      // fallocate takes what is free now; dd then writes until ENOSPC what the run freed or had
      // not yet taken meanwhile (a failed fallocate on tmpfs keeps nothing).
      const { bavail, bsize } = statfsSync(dir);
      await runOk('fallocate', ['-l', String(bavail * bsize), filler]).catch(() => undefined);
      await run('dd', ['if=/dev/zero', `of=${filler}.rest`, 'bs=64k', 'status=none']);
    },
    stop: async () => {
      await fsp.rm(filler, { force: true });
      await fsp.rm(`${filler}.rest`, { force: true });
    },
  };
}

function makeFault(kind: FaultKind, world: World, proxy: TcpProxy, child: ChildProcess, next: () => number): Fault {
  const { registry } = world;
  switch (kind) {
    case 'sigkill':
      return { start: () => Promise.resolve(void child.kill('SIGKILL')), stop: () => Promise.resolve() };
    case 'link-cut':
      return { start: () => proxy.close(), stop: () => Promise.resolve() };
    case 'link-stall':
      return {
        start: () => Promise.resolve(proxy.pauseUp()),
        stop: async () => {
          proxy.resumeUp();
          await proxy.close();
        },
      };
    case 'sshd-restart':
      return { start: () => registry.restartSshd(), stop: () => Promise.resolve() };
    case 'disk-full-upload':
      return diskFull(registry.uploadDir);
    case 'disk-full-registry':
      return diskFull(registry.simplestreamsDir);
    case 'lock-held': {
      // Another writer that takes the registry lock for a while (at times longer than lock-timeout).
      let holder: ChildProcess | undefined;
      const seconds = 2 + Math.floor(next() * 20);
      const lock = path.join(registry.simplestreamsDir, '.lxc-publish', 'lock');
      return {
        start: async () => {
          // The lock file as the publishing user makes it (root's would lock that user out).
          await registry.ssh(`mkdir -p ${path.dirname(lock)} && chmod 700 ${path.dirname(lock)} && : >> ${lock}`);
          // -o: the lock is flock's alone, so that killing it lets the lock go.
          holder = spawn('flock', ['-x', '-o', lock, 'sleep', String(seconds)], { stdio: 'ignore' });
        },
        stop: async () => {
          if (holder && holder.exitCode === null) {
            holder.kill('SIGKILL');
            await new Promise((resolve) => holder?.once('exit', resolve));
          }
        },
      };
    }
  }
}

function chooseFault(next: () => number, stalls: number, maxStalls: number): FaultKind | 'none' {
  if (next() < 0.2) return 'none';
  const kinds = FAULT_KINDS.filter((kind) => kind !== 'link-stall' || stalls < maxStalls);
  return kinds[Math.floor(next() * kinds.length)] as FaultKind;
}

/** Runs a campaign; see the module's comment. */
export async function runCampaign(options: CampaignOptions): Promise<CampaignReport> {
  const log = options.log ?? (() => undefined);
  const next = random(options.seed);
  const started = Date.now();
  const report: CampaignReport = {
    seed: options.seed,
    steps: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>,
    operations: { completed: 0, failed: 0 },
    violations: [],
    history: [],
    minutes: 0,
  };
  const world = await setUp(log);
  try {
    let injected = 0;
    let lastFault: FaultKind | 'none' = 'none';
    /** How long a run of each kind took without a fault, lately (a moving average). */
    const typicalMs = new Map<OperationKind, number>();
    while (injected < options.faults && Date.now() - started < options.maxMinutes * 60_000) {
      const operation = await chooseOperation(world, next);
      const kind = chooseFault(next, report.faults['link-stall'], options.maxStalls ?? Infinity);
      // At a moment within how long such a run took lately, so that most faults land in one.
      const faultAtMs = Math.floor(next() * 0.9 * (typicalMs.get(operation.kind) ?? 1500));
      const proxy = await startProxy({ targetPort: world.registry.sshPort, upBytesPerSecond: UPLINK });
      const begun = Date.now();
      const run = startEntry({ entry: operation.entry, inputs: operation.inputs(proxy.port), timeoutMs: 300_000 });
      let fault: Fault | undefined;
      let timer: NodeJS.Timeout | undefined;
      let injectedAt: number | undefined;
      // Settles once the fault is in place, or at once when the run ended before its moment came.
      let settle = (): void => undefined;
      const faulted = new Promise<void>((resolve) => (settle = resolve));
      if (kind === 'none') settle();
      else
        timer = setTimeout(() => {
          fault = makeFault(kind, world, proxy, run.child, next);
          injectedAt = Date.now() - begun;
          fault.start().then(settle, settle);
        }, faultAtMs);
      const result: BundleRun = await run.done;
      if (!fault) {
        clearTimeout(timer);
        settle();
      }
      await faulted;
      await fault?.stop();
      await proxy.close();
      const step: Step = {
        step: report.steps + 1,
        operation: operation.name,
        fault: fault ? kind : 'none',
        ...(injectedAt !== undefined ? { faultAtMs: injectedAt } : {}),
        exit: result.code,
        ms: Date.now() - begun,
      };
      report.steps += 1;
      report.history.push(step);
      if (fault && kind !== 'none') {
        report.faults[kind] += 1;
        injected += 1;
      }
      if (!fault && result.code === 0)
        typicalMs.set(operation.kind, 0.7 * (typicalMs.get(operation.kind) ?? step.ms) + 0.3 * step.ms);
      if (result.code === 0) report.operations.completed += 1;
      else report.operations.failed += 1;
      log(JSON.stringify(step));
      const violations: string[] = [];
      // A run with no fault must go through, whatever the runs before it left.
      if (!fault && result.code !== 0)
        violations.push(
          `a run with no fault failed: ${result.stdout
            .split('\n')
            .filter((l) => l.startsWith('::error'))
            .join(' ')}`,
        );
      // ... and must not wait on the lock of a run that is gone (a killed or cut run's lease ends
      // with its connection; a stalled one's only after the lease).
      if (!fault && (lastFault === 'sigkill' || lastFault === 'link-cut') && step.ms > 25_000)
        violations.push(`a run after a ${lastFault} took ${step.ms} ms: it waited on a lock whose holder was gone`);
      const check = await checkInvariants(world.registry, {
        // A failed run's staging tree (and what a commit it did not finish moved) stays until the
        // next commit removes it; a run that went through leaves none.
        allowed: result.code === 0 ? [] : ['leftover-staging'],
      });
      violations.push(...check.violations);
      // The checker takes the registry lock first: after a killed or cut run, it must not wait
      // for that run's lease (the lock's holder died with the connection).
      if ((kind === 'sigkill' || kind === 'link-cut') && fault && check.examineMs > 20_000)
        violations.push(`after a ${kind}, taking the registry lock and reading under it took ${check.examineMs} ms`);
      lastFault = step.fault;
      if (violations.length > 0) {
        report.violations = violations;
        log(`VIOLATION at step ${step.step} (seed ${options.seed}): ${violations.join('; ')}`);
        log(`stdout of that run:\n${result.stdout.slice(-6000)}`);
        break;
      }
    }
  } finally {
    report.minutes = (Date.now() - started) / 60_000;
    await tearDown(world);
  }
  return report;
}
