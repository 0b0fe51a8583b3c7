// The check sub-action (the registry doctor), through the committed bundle as the runner runs it:
// - on a registry written only by `incus-simplestreams add`, as release workflows did before this
//   action (latest-<chain> left on every release it was given to, no LXD items, no SHA256SUMS):
//   found, repaired, and the real clients then resolve latest-near to the newest release;
// - on a registry the action published and then broken by hand in every way the check knows:
//   each found; repair mends what it says it mends (checked on disk and by the clients), and
//   leaves the rest, named, with a failing step; a staging tree whose lock a live run holds is
//   left alone; a hostile file name reaches the log escaped;
// - beside a publish (the lock keeps them apart), and on a registry of 2,000 releases.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  connectionInputs,
  expectExit,
  inputsFor,
  runBundle,
  runEntry,
  startBundle,
  type BundleRun,
  type Inputs,
} from '../harness/action.js';
import { imageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { seedReleases } from '../harness/seed.js';

const CHECK = 'dist/check/index.js';
const DAY = 86400;
const FIRST = 1764547200; // 2025-12-01

interface ReportedFinding {
  kind: string;
  severity: string;
  subject: string;
  detail: string;
  repairable: boolean;
  repaired: boolean;
}
interface Report {
  status: string;
  files: number;
  hashed: number;
  late: number;
  findings: ReportedFinding[];
  omitted: Record<string, number>;
}

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-check-'));
});
afterAll(() => fsp.rm(work, { recursive: true, force: true }));

function check(registry: Registry, own: Inputs = {}): Promise<BundleRun> {
  return runEntry({ entry: CHECK, inputs: connectionInputs(registry, own), timeoutMs: 300_000 });
}

const reportOf = (run: BundleRun): Report => JSON.parse(run.outputs['report'] ?? 'null') as Report;
/** Each finding as "kind" or "kind repaired", sorted, each once. */
const kinds = (run: BundleRun): string[] =>
  [...new Set(reportOf(run).findings.map((f) => `${f.kind}${f.repaired ? ' repaired' : ''}`))].sort();

/** Runs a shell command on the registry server as the publishing user, in simplestreams-dir. */
async function onServer(registry: Registry, command: string, input?: string): Promise<string> {
  const result = await registry.ssh(`set -e; cd ${registry.simplestreamsDir}; ${command}`, { input });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  return result.stdout;
}

async function resolve(registry: Registry, client: Client, ref: string): Promise<string | undefined> {
  const info = await imageInfo(registry, client, ref);
  return info.code === 0 ? parseImageInfo(info.stdout).fingerprint : undefined;
}

function image(dir: string, release: string, variant: string, day: number): Promise<TestImage> {
  return makeSplitContainerImage(path.join(work, dir), {
    os: 'crynux-node',
    release,
    variant,
    creationDate: FIRST + day * DAY,
  });
}

describe('a registry written only by incus-simplestreams add', () => {
  let registry: Registry;
  let v4: TestImage;
  let v5: TestImage;

  /** What the old release workflow did: scp the files, then incus-simplestreams add with both aliases. */
  async function addTheOldWay(built: TestImage, version: string): Promise<void> {
    const upload = path.posix.join(registry.uploadDir, `old-${version}`);
    await onServer(registry, `mkdir -p ${upload}`);
    for (const file of [built.metadata, built.rootfs]) {
      const copied = await registry.scp(file, path.posix.join(upload, path.basename(file)));
      if (copied.code !== 0) throw new Error(copied.stderr);
    }
    await onServer(
      registry,
      `incus-simplestreams add ${upload}/${path.basename(built.metadata)} ${upload}/${path.basename(built.rootfs)} ` +
        `--alias crynux-node:${version}-near --alias crynux-node:latest-near`,
    );
  }

  beforeAll(async () => {
    registry = await startRegistry();
    v4 = await image('old-v4', 'v3.4.0', 'near', 4);
    v5 = await image('old-v5', 'v3.5.0', 'near', 5);
    await addTheOldWay(v4, 'v3.4.0');
    await addTheOldWay(v5, 'v3.5.0');
  }, 120_000);
  afterAll(() => registry?.stop());

  it('finds latest-near on both releases, no LXD items and no SHA256SUMS; fail-on decides the exit', async () => {
    const before = await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8');
    const found = await check(registry);
    expectExit(found, 1);
    expect(kinds(found)).toEqual(['alias-on-several-releases', 'missing-lxd-items', 'sha256sums-out-of-step']);
    const conflict = reportOf(found).findings.find((f) => f.kind === 'alias-on-several-releases');
    expect(conflict?.subject).toBe('crynux-node:latest-near (x86_64)');
    expect(conflict?.detail).toContain('The newest is crynux-node:v3.5.0:near:amd64');
    expect(found.outputs).toMatchObject({ status: 'problems', errors: '1', warnings: '3', repaired: '0' });
    expect(found.summary).toContain('Registry check: problems remain');
    expect(found.summary).toContain('repair: true mends it');
    expect(found.stdout).toMatch(/^::error .*Set repair: true to mend those it can/m);
    // Only warnings fail it with fail-on: warning; never reports and passes.
    expectExit(await check(registry, { 'fail-on': 'never' }), 0);
    // Nothing changed without repair.
    expect(await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8')).toBe(before);
  }, 120_000);

  it('repairs it: latest-near on the newest release for both clients, LXD sees both, a second check is clean', async () => {
    const repaired = await check(registry, { repair: 'true' });
    expectExit(repaired, 0);
    expect(kinds(repaired)).toEqual([
      'alias-on-several-releases repaired',
      'missing-lxd-items repaired',
      'sha256sums-out-of-step repaired',
    ]);
    expect(repaired.outputs).toMatchObject({ status: 'repaired', errors: '0', warnings: '0', repaired: '4' });
    for (const client of ['incus', 'lxc'] as const) {
      expect(await resolve(registry, client, 'crynux-node:latest-near')).toBe(v5.fingerprint);
      expect(await resolve(registry, client, 'crynux-node:v3.4.0-near')).toBe(v4.fingerprint);
    }
    expect((await registry.lxcList()).map((i) => i.fingerprint).sort()).toEqual(
      [v4.fingerprint, v5.fingerprint].sort(),
    );
    // users can check downloads against SHA256SUMS now
    expect(await onServer(registry, 'cd images && sha256sum -c --quiet SHA256SUMS && echo ok')).toBe('ok\n');
    const again = await check(registry, { 'fail-on': 'warning' });
    expectExit(again, 0);
    expect(again.outputs).toMatchObject({ status: 'healthy', errors: '0', warnings: '0' });
    expect(again.summary).toContain('Registry check: nothing wrong found');
  }, 180_000);

  it('runs beside a publish: the lock keeps them apart and the check finds nothing', async () => {
    const v6 = await image('v6', 'v3.6.0', 'near', 6);
    const publishing = startBundle(
      inputsFor(registry, v6, { aliases: 'crynux-node:v3.6.0-near, crynux-node:latest-near' }),
    );
    const checks = await Promise.all([1, 2, 3].map(() => check(registry, { 'fail-on': 'warning' })));
    expectExit(await publishing.done, 0);
    for (const run of checks) {
      expectExit(run, 0);
      expect(run.outputs['status']).toBe('healthy');
    }
    expect(await resolve(registry, 'incus', 'crynux-node:latest-near')).toBe(v6.fingerprint);
  }, 180_000);
});

describe('a registry published by the action, then damaged by hand', () => {
  let registry: Registry;
  const built: Record<string, TestImage> = {};
  const held = 'b'.repeat(64);
  const stale = 'a'.repeat(64);

  const indexPath = () => path.join(registry.simplestreamsDir, 'streams/v1/images.json');
  const readIndex = async () =>
    JSON.parse(await fsp.readFile(indexPath(), 'utf8')) as {
      products: Record<
        string,
        { aliases?: string; versions: Record<string, { items: Record<string, Record<string, unknown>> }> }
      >;
    };
  /** The product and version of a published release, and its items. */
  async function release(name: string) {
    const index = await readIndex();
    for (const [key, product] of Object.entries(index.products)) {
      for (const [serial, version] of Object.entries(product.versions)) {
        if (version.items['incus.tar.xz']?.['combined_squashfs_sha256'] === built[name]?.fingerprint)
          return { key, serial, items: version.items };
      }
    }
    throw new Error(`${name} is not published`);
  }
  const pathOf = async (name: string, item: string) => String((await release(name)).items[item]?.['path']);

  beforeAll(async () => {
    registry = await startRegistry();
    for (const [name, day] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ] as const) {
      built[name] = await image(`damaged-${name}`, 'bookworm', 'node', day);
      const aliases = `crynux-node:${name}, crynux-node:latest`;
      expectExit(await runBundle(inputsFor(registry, built[name], { aliases, 'delta-bases': '0' })), 0);
    }
  }, 180_000);
  afterAll(async () => {
    await registry?.ssh(`kill $(cat ${registry.uploadDir}/held.pid) 2>/dev/null; true`);
    await registry?.stop();
  });

  it('finds nothing wrong in what the action published', async () => {
    const run = await check(registry, { 'fail-on': 'warning' });
    expectExit(run, 0);
    expect(reportOf(run)).toMatchObject({ status: 'healthy', findings: [], files: 6, hashed: 6, late: 0 });
  }, 60_000);

  it('finds each kind of damage, and repair mends what it says, leaving the rest named', async () => {
    const [aSquashfs, bMetadata, cSquashfs, cMetadata] = await Promise.all([
      pathOf('a', 'squashfs'),
      pathOf('b', 'incus.tar.xz'),
      pathOf('c', 'squashfs'),
      pathOf('c', 'incus.tar.xz'),
    ]);
    // The index: latest also on A (as incus-simplestreams add leaves it), A's LXD item gone, a delta
    // on B from a base that is not there.
    const index = await readIndex();
    const a = await release('a');
    const b = await release('b');
    const aProduct = index.products[a.key];
    const aVersion = aProduct?.versions[a.serial];
    if (!aProduct || !aVersion) throw new Error('no A');
    aProduct.aliases = `${aProduct.aliases},crynux-node:latest`;
    delete aVersion.items['lxd.tar.xz'];
    const bItems = index.products[b.key]?.versions[b.serial]?.items ?? {};
    bItems['delta-202001010000'] = {
      ftype: 'squashfs.vcdiff',
      path: 'images/orphan.vcdiff',
      sha256: createHash('sha256').update('x').digest('hex'),
      size: 1,
      delta_base: '202001010000',
    };
    await onServer(registry, 'printf x > images/orphan.vcdiff && cat > streams/v1/images.json', JSON.stringify(index));
    await onServer(
      registry,
      [
        // one byte of A's squashfs changed, B's metadata a byte short, C's squashfs gone, C's metadata behind a link
        `b=$(od -An -tu1 -j100 -N1 ${aSquashfs} | tr -d ' '); printf "\\\\$(printf %03o $(((b + 1) % 256)))" | dd of=${aSquashfs} bs=1 seek=100 conv=notrunc status=none`,
        `truncate -s -1 ${bMetadata}`,
        `rm ${cSquashfs}`,
        `mv ${cMetadata} ${cMetadata}.real && ln -s ${path.posix.basename(cMetadata)}.real ${cMetadata}`,
        'echo >> images/SHA256SUMS',
        'rm streams/v1/index.json',
        // what runs that died left: a staging tree and a lock with no holder, a retired file past its grace
        `mkdir -p .lxc-publish/staging/${stale}/images .lxc-publish/locks && printf x > .lxc-publish/staging/${stale}/images/f`,
        `touch .lxc-publish/locks/${'c'.repeat(64)}`,
        'printf x > images/retired.squashfs && echo "$(($(date +%s) - 3 * 3600)) images/retired.squashfs" >> .lxc-publish/retired',
        // a staging tree a live run holds the lock of: not a leftover
        `mkdir -p .lxc-publish/staging/${held} && (flock -x .lxc-publish/locks/${held} sleep 300 < /dev/null > /dev/null 2>&1 & echo $! > ${registry.uploadDir}/held.pid)`,
        // files no index names: an old one, and a new one (within the grace time, not reported)
        "printf x > images/stray.tar.xz && touch -d '3 hours ago' images/stray.tar.xz && printf x > images/recent.bin",
      ].join('\n'),
    );

    const found = await check(registry);
    expectExit(found, 1);
    expect(kinds(found)).toEqual([
      'alias-on-several-releases',
      'delta-without-base',
      'leftover-staging',
      'linked-file',
      'missing-file',
      'missing-lxd-items',
      'retired-file-past-grace',
      'sha256sums-out-of-step',
      'streams-index-out-of-step',
      'unnamed-file',
      'wrong-sha256',
      'wrong-size',
    ]);
    const findings = reportOf(found).findings;
    const subject = (kind: string) => findings.find((f) => f.kind === kind)?.subject ?? '';
    expect(subject('wrong-sha256')).toContain(aSquashfs);
    expect(subject('wrong-size')).toContain(bMetadata);
    expect(subject('missing-file')).toContain(cSquashfs);
    expect(subject('linked-file')).toContain(cMetadata);
    expect(subject('leftover-staging')).toBe(`.lxc-publish/staging/${stale}`);
    expect(subject('unnamed-file')).toBe('images/stray.tar.xz');
    expect(found.summary).not.toContain('recent.bin');
    expect(found.summary).not.toContain(held);

    const repaired = await check(registry, { repair: 'true' });
    expectExit(repaired, 1);
    expect(kinds(repaired)).toEqual([
      'alias-on-several-releases repaired',
      'delta-without-base repaired',
      'leftover-staging repaired',
      'linked-file',
      'missing-file',
      'missing-lxd-items repaired',
      'retired-file-past-grace repaired',
      'sha256sums-out-of-step repaired',
      'streams-index-out-of-step repaired',
      'unnamed-file',
      'wrong-sha256',
      'wrong-size',
    ]);
    expect(repaired.outputs).toMatchObject({ status: 'problems', errors: '4', warnings: '1', repaired: '7' });
    expect(repaired.summary).toContain('left to you: Publish that release again');
    // On disk: what repair removed, and what it left.
    const exists = (file: string) =>
      fsp.access(path.join(registry.simplestreamsDir, file)).then(
        () => true,
        () => false,
      );
    expect(await exists(`.lxc-publish/staging/${stale}`)).toBe(false);
    expect(await exists(`.lxc-publish/staging/${held}`)).toBe(true);
    expect(await exists('images/retired.squashfs')).toBe(false);
    // An image lock with no staging tree (each publish leaves its own) is not reported, but goes.
    expect(await exists(`.lxc-publish/locks/${'c'.repeat(64)}`)).toBe(false);
    expect(await exists('images/stray.tar.xz')).toBe(true);
    expect(await exists('streams/v1/index.json')).toBe(true);
    const after = await readIndex();
    expect(JSON.stringify(after)).not.toContain('orphan.vcdiff');
    expect(after.products[(await release('a')).key]?.aliases).toBe('crynux-node:a');
    // The clients: latest on C (the newest), A listed for LXD again.
    for (const client of ['incus', 'lxc'] as const) {
      expect(await resolve(registry, client, 'crynux-node:latest')).toBe(built['c']?.fingerprint);
      expect(await resolve(registry, client, 'crynux-node:a')).toBe(built['a']?.fingerprint);
    }
  }, 240_000);

  it('reports a hostile file name escaped, in the log, the summary and the report', async () => {
    const hostile = 'evil\n\n::error::injected ##[warning]x';
    await onServer(
      registry,
      `printf x > "images/$(printf 'evil\\n\\n::error::injected ##[warning]x')" && touch -d '3 hours ago' images/evil*`,
    );
    const run = await check(registry, { 'hash-time': '0' });
    expectExit(run, 1);
    // JSON-quoted: no line break, and "#[" written as \u0023[.
    const quoted = JSON.stringify(`images/${hostile}`).replace('#[', '\\u0023[');
    expect(
      reportOf(run)
        .findings.filter((f) => f.kind === 'unnamed-file')
        .map((f) => f.subject),
    ).toContain(quoted);
    expect(reportOf(run)).toMatchObject({ hashed: 0, late: 4 });
    for (const line of run.stdout.split('\n')) {
      expect(line).not.toMatch(/^::error::injected/);
      expect(line).not.toContain('##[warning]');
    }
    // No line of it breaks out of the summary's table (a blank line would end the HTML block).
    expect(run.summary).not.toContain('\n::error::injected');
    const table = run.summary.slice(run.summary.indexOf('<table>'), run.summary.indexOf('</table>'));
    expect(table).not.toContain('\n\n');
    await onServer(registry, 'rm images/evil*');
  }, 60_000);

  it('does nothing but report when a directory is open to others or a link, and keeps what the link leads to', async () => {
    // What a repair would otherwise clean up through: staging/ a link to someone else's files.
    const victim = path.posix.join(registry.uploadDir, 'victim');
    await onServer(
      registry,
      `mkdir -p ${victim}/precious && printf keep > ${victim}/precious/file && ` +
        `mv .lxc-publish/staging .lxc-publish/staging.real && ln -s ${victim} .lxc-publish/staging`,
    );
    const linked = await check(registry, { repair: 'true' });
    expectExit(linked, 1);
    expect(reportOf(linked).findings.map((f) => [f.kind, f.subject])).toEqual([
      ['open-permissions', path.posix.join(registry.simplestreamsDir, '.lxc-publish/staging')],
    ]);
    expect(linked.stdout).toContain('repair: true was not attempted');
    expect(await onServer(registry, `cat ${victim}/precious/file`)).toBe('keep');
    await onServer(
      registry,
      'rm .lxc-publish/staging && mv .lxc-publish/staging.real .lxc-publish/staging && chmod g+w images',
    );
    const open = await check(registry, { repair: 'true' });
    expectExit(open, 1);
    expect(reportOf(open).findings.map((f) => f.kind)).toEqual(['open-permissions']);
    await onServer(registry, 'chmod g-w images');
  }, 60_000);

  it('reports an index that is missing, empty or does not parse, and repairs nothing then', async () => {
    await onServer(registry, 'cp streams/v1/images.json ../images.json.good');
    const sums = await onServer(registry, 'cat images/SHA256SUMS');
    for (const [damage, kind] of [
      ['rm streams/v1/images.json', 'missing-index'],
      [': > streams/v1/images.json', 'unreadable-index'],
      ['echo "{" > streams/v1/images.json', 'unreadable-index'],
    ] as const) {
      await onServer(registry, damage);
      const broken = await check(registry, { repair: 'true' });
      expectExit(broken, 1);
      expect(kinds(broken)).toEqual([kind]);
      expect(broken.summary).toContain('.lxc-publish/previous/images.json');
      expect(broken.summary).toContain('repair: true was not attempted');
      // Nothing was written: not an empty index in its place, not SHA256SUMS.
      expect(await onServer(registry, 'cat images/SHA256SUMS')).toBe(sums);
      expect(await onServer(registry, 'cat streams/v1/index.json')).toContain('"products"');
    }
    await onServer(registry, 'cp ../images.json.good streams/v1/images.json');
  }, 120_000);
});

describe('a registry where nothing was published yet', () => {
  it('is healthy, and a repair writes nothing', async () => {
    const registry = await startRegistry();
    try {
      const run = await check(registry, { repair: 'true', 'fail-on': 'warning' });
      expectExit(run, 0);
      expect(reportOf(run)).toMatchObject({ status: 'healthy', findings: [], files: 0 });
      expect(await onServer(registry, 'ls -A')).toBe('.lxc-publish\n');
    } finally {
      await registry.stop();
    }
  }, 60_000);
});

describe('a registry of 2,000 releases', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
    const seeded = await seedReleases(registry, { count: 2000, variant: 'many', aliasPrefix: 'crynux-many:' });
    // One byte each, the size the index gives them.
    await onServer(
      registry,
      `xargs -r -d '\\n' sh -c 'for f; do printf x > "$f"; done' sh`,
      seeded.files.join('\n') + '\n',
    );
  }, 180_000);
  afterAll(() => registry?.stop());

  it('checks every size, reports the hashes it had no time for, and repairs what the seeding left out', async () => {
    const run = await check(registry, { 'hash-time': '0', repair: 'true', 'fail-on': 'warning' });
    expectExit(run, 0);
    const report = reportOf(run);
    expect(report).toMatchObject({ status: 'repaired', files: 4000, hashed: 0, late: 4000 });
    expect(kinds(run)).toEqual([
      'missing-lxd-items repaired',
      'sha256sums-out-of-step repaired',
      'streams-index-out-of-step repaired',
    ]);
    // The seeded sha256 are not the files': with time to hash, 4,000 findings, which the summary
    // and the log show in part.
    const hashed = await check(registry, { 'hash-time': '600' });
    expectExit(hashed, 1);
    // The outputs of a job are limited to 1 MB: the report holds 100 of each kind and counts the rest.
    expect(hashed.outputs['errors']).toBe('4000');
    expect(reportOf(hashed).findings.filter((f) => f.kind === 'wrong-sha256')).toHaveLength(100);
    expect(reportOf(hashed)).toMatchObject({ omitted: { 'wrong-sha256': 3900 } });
    expect(hashed.outputs['report']?.length).toBeLessThan(256 * 1024);
    expect(hashed.summary.length).toBeLessThan(64 * 1024);
    expect(hashed.stdout.split('\n').filter((line) => line.includes('wrong-sha256')).length).toBeLessThan(100);
  }, 300_000);
});
