/**
 * A bucket looked at by the check sub-action: what its clients get (its own index, and whether
 * every file that index names is there whole) and whether it serves what the host input's server
 * serves. With repair, a bucket out of step is brought up to date (bucket/sync.ts) under the
 * server's registry lock, as a publish does.
 */
import { posix } from 'node:path';
import { describeError, oneLine } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';
import type { CheckReport, ReportedFinding } from '../registry/check.js';
import { readRegistryFile } from '../registry/export.js';
import { takeRegistryLock } from '../registry/lock.js';
import { parseIndexText } from '../registry/read.js';
import type { Registry } from '../registry/registry.js';
import type { Finding } from '../simplestreams/health.js';
import type { Bucket, StoredObject } from './store.js';
import { IMAGES_JSON, INDEX_JSON, namedFiles, prefillBucket, syncBucket } from './sync.js';

/** Findings of one kind shown at most (the rest are counted in one more). */
const SHOWN_PER_KIND = 50;

/** What the bucket's clients miss: files its own index names that it lacks, or holds at another size. */
export function missingFiles(bucketIndex: Buffer, stored: StoredObject[], where: string): Finding[] {
  let named;
  try {
    named = namedFiles(parseIndexText(bucketIndex, where));
  } catch (error) {
    return [
      {
        kind: 'bucket-out-of-step',
        severity: 'error',
        subject: `${where}`,
        detail: `the bucket's index cannot be read (${untrusted(String(error instanceof Error ? error.message : error))})`,
        repairable: true,
      },
    ];
  }
  const sizes = new Map(stored.map((object) => [object.path, object.size]));
  const findings: Finding[] = [];
  for (const file of named) {
    const size = sizes.get(file.path);
    if (size === file.size) continue;
    findings.push({
      kind: 'bucket-missing-file',
      severity: 'error',
      subject: file.path,
      detail:
        size === undefined
          ? "the bucket's index names it, but the bucket does not hold it: clients get a 404"
          : `the bucket holds ${size} bytes under that name; its index says ${file.size}`,
      repairable: true,
    });
  }
  if (findings.length <= SHOWN_PER_KIND) return findings;
  return [
    ...findings.slice(0, SHOWN_PER_KIND),
    {
      ...(findings[0] as Finding),
      subject: `${findings.length - SHOWN_PER_KIND} more files`,
      detail: 'named by the bucket’s index and missing or of another size there',
    },
  ];
}

async function look(registry: Registry, bucket: Bucket): Promise<{ findings: Finding[]; files: number }> {
  const findings: Finding[] = [];
  const served = await bucket.read(IMAGES_JSON);
  const stored: StoredObject[] = [];
  for await (const object of bucket.list('images/')) stored.push(object);
  if (served) findings.push(...missingFiles(served, stored, `${bucket.settings.name}:${IMAGES_JSON}`));
  const origin = await readRegistryFile(registry, IMAGES_JSON);
  const originIndex = await readRegistryFile(registry, INDEX_JSON);
  const servedIndex = await bucket.read(INDEX_JSON);
  const behind =
    origin !== undefined && (!served?.equals(origin) || !servedIndex?.equals(originIndex ?? Buffer.alloc(0)));
  if (behind) {
    findings.push({
      kind: 'bucket-out-of-step',
      severity: 'error',
      subject: `${bucket.settings.name}:${posix.dirname(IMAGES_JSON)}`,
      detail: served
        ? "the bucket serves another index than the host input's server: its clients see other releases"
        : "the bucket serves no index, and the host input's server has one",
      repairable: true,
    });
  }
  const files = origin ? namedFiles(parseIndexText(origin, IMAGES_JSON)).length : 0;
  return { findings, files };
}

/**
 * Checks a bucket against the server `registry` reaches (the host input's); with `repair`,
 * brings it up to date under the server's registry lock and looks again.
 */
export async function checkBucket(
  registry: Registry,
  bucket: Bucket,
  options: { repair: boolean; lockTimeout: number },
): Promise<CheckReport> {
  // Under the server's lock: a publish between its commit and the bucket's copy is not out of step.
  const lookLocked = async (): Promise<Awaited<ReturnType<typeof look>>> => {
    const held = await takeRegistryLock(registry, options.lockTimeout);
    try {
      return await look(registry, bucket);
    } finally {
      await held.lock.release();
    }
  };
  const first = await lookLocked();
  let last = first;
  let indexRepaired = false;
  let failedRepair: Finding | undefined;
  if (options.repair && first.findings.length > 0) {
    await prefillBucket(registry, bucket);
    const held = await takeRegistryLock(registry, options.lockTimeout);
    try {
      indexRepaired = (await syncBucket(registry, bucket, { lost: () => held.lock.lost() })).indexChanged;
      last = await look(registry, bucket);
    } catch (error) {
      // What was found stands, with why the repair could not mend it.
      failedRepair = {
        kind: 'bucket-out-of-step',
        severity: 'error',
        subject: `${bucket.settings.name}: repair`,
        detail: `bringing the bucket up to date failed: ${untrusted(oneLine(describeError(error)))}`,
        repairable: false,
        advice: 'Fix what the message names, then run the check with repair again.',
      };
    } finally {
      await held.lock.release();
    }
  }
  const still = (finding: Finding): boolean =>
    last.findings.some((other) => other.kind === finding.kind && other.subject === finding.subject);
  const findings: ReportedFinding[] = first.findings.map((finding) => ({
    ...finding,
    repaired: last !== first && !still(finding),
  }));
  if (failedRepair) findings.push({ ...failedRepair, repaired: false });
  return {
    findings,
    products: 0,
    versions: 0,
    files: last.files,
    hashed: 0,
    late: 0,
    indexRepaired,
    repairRefused: false,
  };
}
