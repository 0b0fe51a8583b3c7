// The registry's invariants, checked on a harness registry: what the check sub-action finds
// (src/registry/check.ts examineRegistry, read under the registry lock, every file hashed), and
// more, which only holds between runs: no file under images/ that neither the index, the retired
// list nor a commit under way accounts for (a partial or stray file), every file hashed, and, with
// the real incus client (no daemon), every alias is listed on the image the index gives it, and
// every listed image's files download through nginx with the size and sha256 the index gives.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import { examineRegistry, type Examination } from '../../src/registry/check.js';
import type { FindingKind } from '../../src/simplestreams/health.js';
import { referencedPaths } from '../../src/simplestreams/images-index.js';
import { aliasTargets, listImages } from '../../src/simplestreams/resolve.js';
import { listedAliases } from './clients.js';
import { openRegistry } from './connect.js';
import type { Registry } from './registry.js';

export interface InvariantOptions {
  /** Findings that are no violation here (a staging tree a killed run left, which the next run removes). */
  allowed?: readonly FindingKind[];
  /** Also ask the incus client and download every file through nginx (default true). */
  clients?: boolean;
}

/** What one check saw, and what it found wrong. */
export interface InvariantCheck {
  examination: Examination;
  violations: string[];
  /** How long taking the registry lock and reading under it took (a dead holder's lease would show here). */
  examineMs: number;
}

function download(registry: Registry, ca: Buffer, urlPath: string): Promise<{ size: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(`${registry.httpsUrl}/${urlPath}`, { ca, agent: false, timeout: 30_000 }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode}`));
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        hash.update(chunk);
      });
      response.on('end', () => resolve({ size, sha256: hash.digest('hex') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** Checks every invariant of the registry as it stands (no run may be under way). */
export async function checkInvariants(registry: Registry, options: InvariantOptions = {}): Promise<InvariantCheck> {
  const handle = await openRegistry(registry);
  let examination: Examination;
  const started = Date.now();
  try {
    examination = await examineRegistry(handle, { lockTimeout: 600, lxdCompat: true, hashSeconds: 600 });
  } finally {
    handle.close();
  }
  const examineMs = Date.now() - started;
  const allowed = new Set<string>(options.allowed ?? []);
  const violations = examination.findings
    .filter((finding) => !allowed.has(finding.kind))
    .map((finding) => `${finding.kind}: ${finding.subject}: ${finding.detail}`);
  const index = examination.index;
  if (!index) return { examination, violations, examineMs };
  const { inspection, files } = examination;
  const named = referencedPaths(index);
  for (const entry of inspection.entries) {
    const path = `images/${entry.name}`;
    if (
      named.has(path) ||
      entry.name === 'SHA256SUMS' ||
      inspection.retired.has(path) ||
      inspection.moved.has(entry.name)
    )
      continue;
    violations.push(`a file under images/ that nothing accounts for (partial or stray): ${JSON.stringify(entry.name)}`);
  }
  if (files && files.late.length > 0) violations.push(`${files.late.length} files were not hashed in time`);
  // Nothing published yet: no index.json for a client to read.
  if (options.clients === false || Object.keys(index.products).length === 0)
    return { examination, violations, examineMs };
  // One listing: the client gives each alias to the image it resolves it to.
  const listed = await listedAliases(registry, 'incus');
  for (const target of aliasTargets(index)) {
    const seen = listed.get(target.alias) ?? [];
    if (!seen.includes(target.fingerprint))
      violations.push(
        `incus lists ${target.alias} on ${seen.join(', ') || 'no image'}, the index on ${target.fingerprint}`,
      );
  }
  const ca = await fsp.readFile(registry.caFile);
  const checked = new Set<string>();
  for (const image of listImages(index)) {
    for (const file of image.files) {
      if (checked.has(file.path)) continue;
      checked.add(file.path);
      try {
        const got = await download(registry, ca, file.path);
        if (got.size !== file.size || got.sha256 !== file.sha256)
          violations.push(
            `${file.path} downloads as ${got.size} bytes ${got.sha256}, the index says ${file.size} ${file.sha256}`,
          );
      } catch (error) {
        violations.push(`${file.path} does not download: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  return { examination, violations, examineMs };
}
