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
import { untrustedLine } from '../common/untrusted.js';
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
import { HASH, INSPECT } from './scripts.js';

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
}

/** What one look at the registry found. */
interface Look {
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

async function checkFiles(registry: Registry, index: ImagesIndex, options: CheckOptions): Promise<FileChecks> {
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
  if (held.liveText.length === 0) return { index: emptyImagesIndex() };
  try {
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

async function look(
  registry: Registry,
  lock: HeldLock,
  index: ImagesIndex | undefined,
  files: FileChecks | undefined,
  options: CheckOptions,
): Promise<Look> {
  const inspection = await inspect(registry, lock);
  if (!index) return { index, inspection, findings: [] };
  const findings = [
    ...treeFindings(index, inspection),
    ...indexFindings(index, { lxdCompat: options.lxdCompat, streamsIndex: inspection.streamsIndex }),
    ...(files ? fileFindings(index, files) : []),
  ];
  return { index, inspection, findings };
}

const sameFinding = (a: Finding, b: Finding): boolean => a.kind === b.kind && a.subject === b.subject;

/**
 * Checks the registry under its lock, and with `options.repair` mends what is safe; see the
 * module's comment.
 */
export async function checkRegistry(registry: Registry, options: CheckOptions): Promise<CheckReport> {
  await registry.checkLoginShell();
  const held = await takeRegistryLock(registry, options.lockTimeout);
  try {
    const parsed = parseLive(registry, held);
    const files = parsed.index ? await checkFiles(registry, parsed.index, options) : undefined;
    const first = await look(registry, held.lock, parsed.index, files, options);
    if (parsed.finding) first.findings.unshift(parsed.finding);
    let last = first;
    let indexRepaired = false;
    if (options.repair && parsed.index && first.findings.some((finding) => finding.repairable)) {
      const repaired = repairIndex(parsed.index, { lxdCompat: options.lxdCompat });
      const live = repaired.index ?? parsed.index;
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
      last = await look(registry, held.lock, live, files, options);
    }
    if (held.lock.lost()) throw leaseLost(held.lock, 'Checking the registry', REGISTRY_LOCK_NAME);
    const findings: ReportedFinding[] = first.findings.map((finding) => ({
      ...finding,
      repaired: last !== first && !last.findings.some((other) => sameFinding(other, finding)),
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
    };
  } finally {
    await held.lock.release();
  }
}
