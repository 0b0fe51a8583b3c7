// Digests for attestations: the `files` output names every file of the release with the sha256
// and size the registry serves, and images/SHA256SUMS beside the files lists every file the index
// names, checked by `sha256sum -c` itself, served by the guide's nginx with the index's short
// caching, and rewritten with every index: a release's lines go when it goes (retention, the
// remove sub-action) and a delta's come with it. A symlink planted where SHA256SUMS goes is
// replaced, never written through.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, runEntry, type BundleRun, type Inputs } from '../harness/action.js';
import { run } from '../harness/exec.js';
import { makeSplitContainerImage, sha256File, writeRandomFile, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { readTreeIndex, treeItems } from '../harness/tree.js';

const TIMEOUT = 180_000;
let registry: Registry;
let work: string;
let a: TestImage;
let b: TestImage;
let c: TestImage;
let ca: string;

interface PublishedFile {
  path: string;
  sha256: string;
  size: number;
  ftype: string;
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-digests-'));
  registry = await startRegistry();
  ca = await fsp.readFile(registry.caFile, 'utf8');
  // A, B and C: one line; A's and B's payloads 64 KiB apart (B gets a delta from A).
  const payloadA = path.join(work, 'payload-a');
  const payloadB = path.join(work, 'payload-b');
  await writeRandomFile(payloadA, 2 * 1024 * 1024);
  const bytes = await fsp.readFile(payloadA);
  randomBytes(65536).copy(bytes, 1024 * 1024);
  await fsp.writeFile(payloadB, bytes);
  const line = { variant: 'digests', compression: 'gzip' as const };
  a = await makeSplitContainerImage(path.join(work, 'a'), { ...line, payloadFile: payloadA });
  b = await makeSplitContainerImage(path.join(work, 'b'), { ...line, payloadFile: payloadB });
  c = await makeSplitContainerImage(path.join(work, 'c'), line);
}, TIMEOUT);

afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

const imagesDir = (): string => path.join(registry.simplestreamsDir, 'images');
const sumsFile = (): string => path.join(imagesDir(), 'SHA256SUMS');

async function publish(image: TestImage, extra: Inputs = {}): Promise<BundleRun> {
  const result = await runBundle(inputsFor(registry, image, extra));
  if (result.code !== 0) throw new Error(`the bundle failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

const filesOf = (result: BundleRun): PublishedFile[] =>
  JSON.parse(result.outputs['files'] ?? 'null') as PublishedFile[];

/** Every file the live index names, as "sha256  name" lines, sorted (what SHA256SUMS must hold). */
async function expectedSums(): Promise<string[]> {
  const lines = new Set(
    treeItems(await readTreeIndex(registry)).map((item) => `${item.sha256}  ${path.basename(item.path)}`),
  );
  // Sorted by file name, as the file is.
  const name = (line: string) => line.slice(66);
  return [...lines].sort((x, y) => (name(x) < name(y) ? -1 : name(x) > name(y) ? 1 : 0));
}

async function sumsLines(): Promise<string[]> {
  return (await fsp.readFile(sumsFile(), 'utf8')).split('\n').filter((line) => line !== '');
}

/** `sha256sum -c` run where a user would, beside the files. */
async function checkWithSha256sum(): Promise<void> {
  const result = await run('sha256sum', ['-c', '--strict', 'SHA256SUMS'], { cwd: imagesDir() });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
}

function get(url: string): Promise<{ status: number; type?: string; cache?: string; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ...(res.headers['content-type'] ? { type: res.headers['content-type'] } : {}),
            ...(res.headers['cache-control'] ? { cache: res.headers['cache-control'] } : {}),
            body,
          }),
        );
      })
      .on('error', reject);
  });
}

describe('digests', () => {
  it(
    'files: every file of the release once, with the sha256 and size of the file the registry serves',
    async () => {
      const result = await publish(a);
      const files = filesOf(result);
      expect(files.map((file) => file.ftype)).toEqual(['incus.tar.xz', 'squashfs']);
      for (const file of files) {
        const served = path.join(registry.simplestreamsDir, file.path);
        expect(file.sha256).toBe(await sha256File(served));
        expect(file.size).toBe((await fsp.stat(served)).size);
      }
      // The same bytes as the local files (the upload is what was published).
      expect(files.map((file) => file.sha256)).toEqual([await sha256File(a.metadata), await sha256File(a.rootfs)]);
      expect(await sumsLines()).toEqual(await expectedSums());
      await checkWithSha256sum();
      expect((await fsp.stat(sumsFile())).mode & 0o777).toBe(0o644);
    },
    TIMEOUT,
  );

  it(
    "a delta is one of the release's files, and a line in SHA256SUMS",
    async () => {
      const result = await publish(b);
      const files = filesOf(result);
      const delta = files.find((file) => file.ftype === 'squashfs.vcdiff');
      expect(delta).toBeDefined();
      expect(JSON.parse(result.outputs['deltas'] ?? '[]')).toHaveLength(1);
      expect(delta!.sha256).toBe(await sha256File(path.join(registry.simplestreamsDir, delta!.path)));
      expect(await sumsLines()).toContain(`${delta!.sha256}  ${path.basename(delta!.path)}`);
      expect(await sumsLines()).toEqual(await expectedSums());
      await checkWithSha256sum();
    },
    TIMEOUT,
  );

  it(
    'is served as text with the short caching of the index',
    async () => {
      const served = await get(`${registry.httpsUrl}/images/SHA256SUMS`);
      expect(served.status).toBe(200);
      expect(served.type).toBe('text/plain');
      expect(served.cache).toBe('public, max-age=10, stale-if-error=3600');
      expect(served.body).toBe(await fsp.readFile(sumsFile(), 'utf8'));
    },
    TIMEOUT,
  );

  it(
    "loses a release's lines when retention drops it (and the delta from it), and replaces a planted symlink without writing through it",
    async () => {
      const deltaLine = (await sumsLines()).find((line) => line.endsWith('.vcdiff'));
      expect(deltaLine).toBeDefined();
      const victim = path.join(work, 'victim.txt');
      await fsp.writeFile(victim, 'untouched\n');
      await fsp.rm(sumsFile());
      await fsp.symlink(victim, sumsFile());
      expect(await sumsLines()).toEqual(['untouched']); // read through the planted link
      // C is the line's third release; keep-versions 2 keeps B and C and drops A.
      const result = await publish(c, { 'keep-versions': '2' });
      expect(result.outputs['status']).toBe('published');
      expect(await fsp.readFile(victim, 'utf8')).toBe('untouched\n');
      expect((await fsp.lstat(sumsFile())).isFile()).toBe(true);
      const lines = await sumsLines();
      expect(lines).toEqual(await expectedSums());
      expect(lines.join('\n')).not.toContain(await sha256File(a.rootfs));
      expect(lines.join('\n')).toContain(await sha256File(b.rootfs));
      expect(lines.join('\n')).toContain(await sha256File(c.rootfs));
      expect(lines).not.toContain(deltaLine); // its base left the index
      await checkWithSha256sum();
    },
    TIMEOUT,
  );

  it(
    "loses a release's lines when the remove sub-action withdraws it",
    async () => {
      expect((await sumsLines()).join('\n')).toContain(await sha256File(b.rootfs));
      const result = await runEntry({
        entry: 'dist/remove/index.js',
        inputs: {
          host: registry.host,
          port: String(registry.sshPort),
          username: registry.username,
          'ssh-key': registry.privateKey,
          'host-fingerprint': registry.hostKeyFingerprint,
          'simplestreams-dir': registry.simplestreamsDir,
          fingerprint: b.fingerprint,
        },
      });
      if (result.code !== 0) throw new Error(`remove failed:\n${result.stdout}\n${result.stderr}`);
      const lines = await sumsLines();
      expect(lines).toEqual(await expectedSums());
      expect(lines.join('\n')).not.toContain(await sha256File(b.rootfs));
      expect(lines.join('\n')).not.toContain(await sha256File(b.metadata));
      await checkWithSha256sum();
      expect(lines.join('\n')).toContain(await sha256File(c.rootfs));
    },
    TIMEOUT,
  );
});
