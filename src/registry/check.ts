/**
 * The registry doctor (the check sub-action): under the registry lock, reads the index, the
 * files it names (sizes always, sha256 within a time, newest releases first) and the rest of the
 * tree, and reports what is wrong. With `repair`, mends what is safe in the same hold of the lock
 * (an alias left on older releases, LXD items, deltas whose base is gone, index.json and
 * SHA256SUMS, by one commit like any other; what dead runs left, by the clean-up that runs with
 * it), then looks again: what it reports as repaired is what the second look no longer finds.
 */
import { Readable } from 'node:stream';
import { ActionError } from '../common/errors.js';
import { untrusted, untrustedLine } from '../common/untrusted.js';
import { indexFindings, repairIndex, type Finding } from '../simplestreams/health.js';
import { emptyImagesIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { parseImagesIndex } from '../simplestreams/parse.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { commit, REGISTRY_LOCK_NAME } from './commit.js';
import {
  fileFindings,
  namedFiles,
  parseFileChecks,
  parseInspection,
  treeFindings,
  type FileChecks,
  type Inspection,
} from './health.js';
import { liveIndexPath, stateDir } from './layout.js';
import { leaseLost, takeRegistryLock, type HeldLock, type RawRegistryLock } from './lock.js';
import type { Registry } from './registry.js';
import { readFailure } from './read.js';
import { HASH, INSPECT, READ_LIVE_EXIT, READ_LIVE_INDEX } from './scripts.js';

export interface CheckOptions {
  lockTimeout: number;
  lxdCompat: boolean;
  /** Mend what is safe to mend. */
  repair: boolean;
  /** Seconds to spend hashing the files the index names (0: sizes only). */
  hashSeconds: number;
}

/** A finding, and whether the repair mended it. */
export interface ReportedFinding extends Finding {
  repaired: boolean;
}

export interface CheckReport {
  findings: ReportedFinding[];
  /** Products and versions in the index (after a repair, if any). */
  products: number;
  versions: number;
  /** Files the index names; how many were hashed, and how many there was no time for. */
  files: number;
  hashed: number;
  late: number;
  /** Whether a repair changed the index. */
  indexRepaired: boolean;
  /** Whether repair was asked for and not attempted, for a finding that blocks it. */
  repairRefused: boolean;
}

/** What one look at the registry found. */
export interface Look {
  index: ImagesIndex | undefined;
  inspection: Inspection;
  findings: Finding[];
}

async function inspect(registry: Registry, lock: HeldLock): Promise<Inspection> {
  const what = `Reading the files of ${registry.paths.simplestreamsDir} (simplestreams-dir)`;
  const result = await registry.execScript(INSPECT, [registry.paths.simplestreamsDir, stateDir(registry.paths)], {
    what,
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
  if (result.code !== 0) throw new ActionError(remoteFailure(what, result));
  if (lock.lost()) throw leaseLost(lock, what, REGISTRY_LOCK_NAME);
  return parseInspection(result.stdout);
}

async function checkFiles(
  registry: Registry,
  index: ImagesIndex,
  options: Pick<CheckOptions, 'hashSeconds'>,
): Promise<FileChecks> {
  const paths = namedFiles(index).map((file) => file.path);
  const what = `Checking the ${paths.length} files the index names (hash-time ${options.hashSeconds} s)`;
  const result = await registry.execScript(HASH, [registry.paths.simplestreamsDir, String(options.hashSeconds)], {
    what,
    stdin: Readable.from([paths.map((path) => `${path}\n`).join('')]),
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS + options.hashSeconds,
  });
  if (result.code !== 0) throw new ActionError(remoteFailure(what, result));
  return parseFileChecks(result.stdout);
}

/** The index read under the lock, or the finding that says why it cannot be read. */
function parseLive(registry: Registry, held: RawRegistryLock): { index?: ImagesIndex; finding?: Finding } {
  if (!held.indexExists) return { index: emptyImagesIndex() };
  try {
    if (held.liveText.length === 0) throw new Error('the file is empty');
    return { index: parseImagesIndex(held.liveText.toString('utf8')) };
  } catch (error) {
    const path = liveIndexPath(registry.paths);
    return {
      finding: {
        kind: 'unreadable-index',
        severity: 'error',
        subject: 'streams/v1/images.json',
        detail: `${path} is not a simplestreams index: ${untrustedLine(error instanceof Error ? error.message : String(error)).slice(0, 300)}. Clients list nothing and publishes fail.`,
        repairable: false,
        advice:
          'The index before the last change is kept in .lxc-publish/previous/images.json: check it and copy it back, or publish the releases again.',
      },
    };
  }
}

/** Whether the tree holds what only a publish leaves: an index.json naming products, or files in images/. */
function somethingPublished(inspection: Inspection): boolean {
  const products = (inspection.streamsIndex as { index?: { images?: { products?: unknown } } } | undefined)?.index
    ?.images?.products;
  return (Array.isArray(products) && products.length > 0) || inspection.entries.some((e) => e.name !== 'SHA256SUMS');
}

function missingIndex(registry: Registry): Finding {
  return {
    kind: 'missing-index',
    severity: 'error',
    subject: 'streams/v1/images.json',
    detail: `${liveIndexPath(registry.paths)} is missing, yet index.json or images/ hold what a publish left: clients list nothing.`,
    repairable: false,
    advice:
      'The index before the last change is kept in .lxc-publish/previous/images.json: check it and copy it back, or publish the releases again.',
  };
}

/** Findings that stop a repair: the registry is not in a state to commit to safely. */
const BLOCKS_REPAIR = new Set<Finding['kind']>(['open-permissions', 'unreadable-index', 'missing-index']);

/** What a registry where nothing was ever published lacks, rightly. */
const NOTHING_PUBLISHED_YET = new Set<Finding['kind']>(['streams-index-out-of-step', 'sha256sums-out-of-step']);

async function look(
  registry: Registry,
  lock: HeldLock,
  index: ImagesIndex | undefined,
  files: FileChecks | undefined,
  options: Pick<CheckOptions, 'lxdCompat'> & { indexExists: boolean },
): Promise<Look> {
  const { indexExists } = options;
  const inspection = await inspect(registry, lock);
  if (!index) return { index, inspection, findings: [] };
  if (!indexExists && somethingPublished(inspection)) {
    return { index: undefined, inspection, findings: [missingIndex(registry)] };
  }
  const findings = [
    ...treeFindings(index, inspection),
    ...indexFindings(index, { lxdCompat: options.lxdCompat, streamsIndex: inspection.streamsIndex }),
    ...(files ? fileFindings(index, files) : []),
  ].filter(
    // Nothing published yet: no index.json and no SHA256SUMS is how it should be.
    (finding) => indexExists || !NOTHING_PUBLISHED_YET.has(finding.kind),
  );
  return { index, inspection, findings };
}

/** The look before any repair: the index read under the lock, its files, the tree. */
async function firstLook(
  registry: Registry,
  held: RawRegistryLock,
  options: Omit<CheckOptions, 'repair'>,
): Promise<{ parsed: { index?: ImagesIndex; finding?: Finding }; files?: FileChecks; first: Look }> {
  const parsed = parseLive(registry, held);
  const files = parsed.index ? await checkFiles(registry, parsed.index, options) : undefined;
  const first = await look(registry, held.lock, parsed.index, files, {
    ...options,
    indexExists: held.indexExists,
  });
  if (parsed.finding) first.findings.unshift(parsed.finding);
  return { parsed, files, first };
}

/** What one look under the lock saw: the index, the tree, the files it names, the findings. */
export interface Examination extends Look {
  files?: FileChecks;
}

/**
 * One look at the registry under its lock, changing nothing: the check without repair, with
 * everything it read (the invariant checker of the tests reads more than the findings).
 */
export async function examineRegistry(registry: Registry, options: Omit<CheckOptions, 'repair'>): Promise<Examination> {
  await registry.checkLoginShell();
  const held = await takeRegistryLock(registry, options.lockTimeout);
  try {
    const { files, first } = await firstLook(registry, held, options);
    if (held.lock.lost()) throw leaseLost(held.lock, 'Checking the registry', REGISTRY_LOCK_NAME);
    return { ...first, ...(files ? { files } : {}) };
  } finally {
    await held.lock.release();
  }
}

const sameFinding = (a: Finding, b: Finding): boolean => a.kind === b.kind && a.subject === b.subject;

/**
 * read.sh's checks, before the lock is taken (the lock's files are under simplestreams-dir): a
 * registry directory that others can write, or that is a symbolic link, is reported, and nothing
 * else is read or written through it. Other failures (no simplestreams-dir) fail the step.
 */
async function preflight(registry: Registry): Promise<Finding | undefined> {
  const result = await registry.execProbedScript(READ_LIVE_INDEX, [registry.paths.simplestreamsDir, '', '', '1', ''], {
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
    what: `Checking ${registry.paths.simplestreamsDir} (simplestreams-dir)`,
  });
  if (result.code === 0 || result.code === READ_LIVE_EXIT.noIndexYet) return undefined;
  if (result.code !== READ_LIVE_EXIT.writableByOthers) throw readFailure(registry, result);
  const dir = result.stderr.trim().split('\n').at(-1) ?? registry.paths.simplestreamsDir;
  return {
    kind: 'open-permissions',
    severity: 'error',
    subject: untrusted(dir),
    detail:
      "others than the SSH user can write it (group or others have write permission), or it is a symbolic link: the web server's user could change what is published. Nothing else was checked or changed: the check would read, and a repair write, through it.",
    repairable: false,
    advice:
      'Run chmod g-w,o-w on it (see docs/server-setup.md), or replace the link with a directory; then check again.',
  };
}

/**
 * Checks the registry under its lock, and with `options.repair` mends what is safe; see the
 * module's comment. A repair is not attempted while a finding that blocks it stands (open
 * permissions, an index that cannot be read or is missing): `repairRefused` says so.
 */
export async function checkRegistry(registry: Registry, options: CheckOptions): Promise<CheckReport> {
  const refused = await preflight(registry);
  if (refused) {
    return {
      findings: [{ ...refused, repaired: false }],
      products: 0,
      versions: 0,
      files: 0,
      hashed: 0,
      late: 0,
      indexRepaired: false,
      repairRefused: options.repair,
    };
  }
  const held = await takeRegistryLock(registry, options.lockTimeout);
  try {
    const { parsed, files, first } = await firstLook(registry, held, options);
    let last = first;
    let indexRepaired = false;
    const blocked = first.findings.some((finding) => BLOCKS_REPAIR.has(finding.kind));
    if (options.repair && !blocked && first.index && first.findings.some((finding) => finding.repairable)) {
      const repaired = repairIndex(first.index, { lxdCompat: options.lxdCompat });
      const live = repaired.index ?? first.index;
      // index.json is rewritten with images.json: a commit of the same index mends it.
      const changed =
        repaired.index !== undefined || first.findings.some((f) => f.kind === 'streams-index-out-of-step');
      await commit(registry, {
        lock: held.lock,
        live,
        changed,
        current: { text: held.liveText, sumsSha256: held.sumsSha256 },
        retired: repaired.retired,
        done: [],
      });
      indexRepaired = changed;
      last = await look(registry, held.lock, live, files, { ...options, indexExists: true });
    }
    if (held.lock.lost()) throw leaseLost(held.lock, 'Checking the registry', REGISTRY_LOCK_NAME);
    // Repaired: repairable, and the look after the repair no longer finds it (one finding per item).
    const findings: ReportedFinding[] = first.findings.map((finding) => ({
      ...finding,
      repaired: finding.repairable && last !== first && !last.findings.some((other) => sameFinding(other, finding)),
    }));
    // A look after the repair may find what the first did not (a run's lock freed meanwhile).
    for (const finding of last.findings) {
      if (!first.findings.some((other) => sameFinding(other, finding))) findings.push({ ...finding, repaired: false });
    }
    const index = last.index ?? emptyImagesIndex();
    const versions = Object.values(index.products).reduce(
      (count, product) => count + Object.keys(product.versions ?? {}).length,
      0,
    );
    return {
      findings,
      products: Object.keys(index.products).length,
      versions,
      files: files ? namedFiles(parsed.index ?? emptyImagesIndex()).length : 0,
      hashed: files?.hashes.size ?? 0,
      late: files?.late.length ?? 0,
      indexRepaired,
      repairRefused: options.repair && blocked,
    };
  } finally {
    await held.lock.release();
  }
}
