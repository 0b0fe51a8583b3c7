// A bucket as a member of the fleet: a real S3 object store (a one-node Ceph cluster with radosgw,
// harness/bucket.ts) beside a loopback registry server, through the committed bundle. The image
// files go to the bucket from the runner before anything is committed; once the server committed,
// the bucket gets every file its index names, then the index. The clients and the daemons read
// the bucket through an HTTPS front (as a CDN in front of a bucket), anonymously.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  DeleteBucketPolicyCommand,
  DeleteObjectsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { Readable } from 'node:stream';
import path from 'node:path';
import {
  connectionInputs,
  expectExit,
  inputsFor,
  runBundle,
  runEntry,
  type BundleRun,
  type Inputs,
} from '../harness/action.js';
import { startBucketFront, startObjectStore, type BucketFront, type ObjectStore } from '../harness/bucket.js';
import { type Daemons, freshRemoteUrl, startDaemons } from '../harness/daemons.js';
import { runOk } from '../harness/exec.js';
import { BOOT_MARKER, makeBootableImage, makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const BUCKET = 'lxc-images';
const PREFIX = 'registry/';
const KEY_ID = 'CEPH_ACCESS_KEY_ID';
const SECRET = 'CEPH_SECRET_ACCESS_KEY';

let server: Registry;
let store: ObjectStore;
let front: BucketFront;
let work: string;
let count = 0;

beforeAll(async () => {
  [server, store] = await Promise.all([startRegistry(), startObjectStore()]);
  await store.createBucket(BUCKET, PREFIX);
  front = await startBucketFront(store, BUCKET, PREFIX);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-buckets-'));
}, 240_000);
afterAll(async () => {
  await front?.stop();
  await Promise.all([server?.stop(), store?.stop()]);
  await fsp.rm(work, { recursive: true, force: true });
}, 240_000);

async function image(rootfsBytes = 4096): Promise<TestImage> {
  const creationDate = 1764547200 + ++count * 86400;
  const dir = path.join(work, `image-${count}`);
  await fsp.mkdir(dir, { recursive: true });
  return makeSplitContainerImage(dir, {
    os: 'bucket',
    release: 'bookworm',
    variant: 'default',
    creationDate,
    rootfsBytes,
  });
}

/** A buckets entry for `bucket` (the test bucket by default). */
function bucketEntry(options: { name?: string; bucket?: string; prefix?: string } = {}): string {
  return [
    `- name: ${options.name ?? 'ceph'}`,
    `  endpoint: ${store.endpoint}`,
    `  bucket: ${options.bucket ?? BUCKET}`,
    `  prefix: ${options.prefix ?? PREFIX}`,
    `  access-key-id-env: ${KEY_ID}`,
    `  secret-access-key-env: ${SECRET}`,
  ].join('\n');
}

const credentials = (secret = store.secretKey): NodeJS.ProcessEnv => ({ [KEY_ID]: store.accessKey, [SECRET]: secret });

function publish(published: TestImage, extra: Inputs = {}, env = credentials()): Promise<BundleRun> {
  return runBundle(inputsFor(server, published, { aliases: 'bucket:latest', buckets: bucketEntry(), ...extra }), env);
}

interface ServerEntry {
  name: string;
  status: string;
  bucket?: string;
  error?: string;
}
const serversOutput = (result: BundleRun): ServerEntry[] =>
  JSON.parse(result.outputs['servers'] ?? '[]') as ServerEntry[];

const serverFile = (file: string): Promise<Buffer | undefined> =>
  fsp.readFile(path.join(server.simplestreamsDir, file)).catch(() => undefined);

/** The files in the server's images/ (named by the index or kept for a while after). */
async function serverImages(): Promise<string[]> {
  const names = await fsp.readdir(path.join(server.simplestreamsDir, 'images')).catch(() => [] as string[]);
  return names.map((name) => `images/${name}`).sort();
}

/** The bucket's objects under the prefix, without it. */
async function bucketObjects(prefix = PREFIX, bucket = BUCKET): Promise<Map<string, number>> {
  const keys = await store.keys(bucket, prefix);
  return new Map([...keys].map(([key, size]) => [key.slice(prefix.length), size]));
}

/** The paths the index names, with their sizes. */
function named(imagesJson: Buffer): Map<string, number> {
  const index = JSON.parse(imagesJson.toString('utf8')) as {
    products: Record<string, { versions: Record<string, { items: Record<string, { path: string; size: number }> }> }>;
  };
  const files = new Map<string, number>();
  for (const product of Object.values(index.products))
    for (const version of Object.values(product.versions))
      for (const item of Object.values(version.items)) files.set(item.path, item.size);
  return files;
}

/** What the bucket serves equals what the server serves: the index, and every file it names. */
async function expectBucketServesServer(prefix = PREFIX, bucket = BUCKET): Promise<void> {
  const imagesJson = (await serverFile('streams/v1/images.json')) as Buffer;
  for (const file of ['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS'])
    expect((await store.read(bucket, `${prefix}${file}`))?.equals((await serverFile(file)) as Buffer)).toBe(true);
  const objects = await bucketObjects(prefix, bucket);
  for (const [file, size] of named(imagesJson)) expect([file, objects.get(file)]).toEqual([file, size]);
  // Nothing of this run's uploads stays behind.
  expect([...objects.keys()].filter((key) => key.startsWith('.lxc-publish/uploads/'))).toEqual([]);
}

/** Dates the bucket's own retired list `hours` back, as if that much time had passed. */
async function ageBucketRetired(hours: number): Promise<string> {
  const key = `${PREFIX}.lxc-publish/retired`;
  const text = ((await store.read(BUCKET, key)) ?? Buffer.alloc(0)).toString('utf8');
  const aged = text.replace(/^(\d+)/gm, (stamp) => String(Number(stamp) - hours * 3600));
  await store.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(aged) }));
  return text;
}

/**
 * Runs `work` with the test bucket's policy denying `action` on `resource` (a policy written
 * wrong), then puts the public-read policy back.
 */
async function withDenied<T>(action: string, resource: string, work: () => Promise<T>): Promise<T> {
  const policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: '*',
        Action: ['s3:GetObject'],
        Resource: ['images/*', 'streams/*'].map((folder) => `arn:aws:s3:::${BUCKET}/${PREFIX}${folder}`),
      },
      { Effect: 'Deny', Principal: '*', Action: [action], Resource: [`arn:aws:s3:::${BUCKET}/${resource}`] },
    ],
  };
  await store.client.send(new PutBucketPolicyCommand({ Bucket: BUCKET, Policy: JSON.stringify(policy) }));
  try {
    return await work();
  } finally {
    await store.client.send(new DeleteBucketPolicyCommand({ Bucket: BUCKET }));
    await store.allowReads(BUCKET, PREFIX);
  }
}

/** A client of its own (no cached index) that trusts the front's CA. */
async function clientEnv(): Promise<NodeJS.ProcessEnv> {
  const home = await fsp.mkdtemp(path.join(work, 'client-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    INCUS_CONF: path.join(home, 'incus'),
    LXD_CONF: path.join(home, 'lxd'),
    SSL_CERT_FILE: front.caFile,
  };
  delete env['SSL_CERT_DIR'];
  delete env['XDG_CACHE_HOME'];
  delete env['XDG_CONFIG_HOME'];
  return env;
}

/** The fingerprint `client` resolves `alias` to, reading the bucket through the front. */
async function resolvedThroughFront(client: 'incus' | 'lxc', alias: string): Promise<string | undefined> {
  const env = await clientEnv();
  await runOk(client, ['remote', 'add', 'bucket', front.url, '--protocol=simplestreams', '--public'], { env });
  const listed = await runOk(client, ['image', 'list', 'bucket:', '--format', 'json'], { env });
  const images = JSON.parse(listed.stdout) as { fingerprint: string; aliases: { name: string }[] | null }[];
  return images.find((entry) => (entry.aliases ?? []).some((a) => a.name === alias))?.fingerprint;
}

describe('a bucket beside the server', () => {
  let first: TestImage;
  /** The release bucket:latest names. */
  let latest: TestImage;

  it('gets the release from the runner, then the index the server committed; both clients read it there', async () => {
    first = await image();
    const result = await publish(first);
    expectExit(result, 0);
    expect(serversOutput(result).map((entry) => [entry.name, entry.status, entry.bucket])).toEqual([
      [`${server.host}:${server.sshPort}`, 'published', undefined],
      ['ceph', 'published', `${BUCKET}/${PREFIX}`],
    ]);
    expect(result.stdout).toMatch(
      /\[ceph\] 2 file\(s\) copied from this run's upload, 0 from the server, 0 removed; index updated/,
    );
    await expectBucketServesServer();
    const files = [...named((await serverFile('streams/v1/images.json')) as Buffer).keys()];
    for (const file of files) {
      expect(await store.headers(BUCKET, `${PREFIX}${file}`)).toMatchObject({
        contentType: 'application/octet-stream',
        cacheControl: 'public, max-age=31536000, immutable',
      });
    }
    expect(await store.headers(BUCKET, `${PREFIX}streams/v1/images.json`)).toMatchObject({
      contentType: 'application/json',
      cacheControl: 'public, max-age=10, stale-if-error=3600',
    });
    expect(await resolvedThroughFront('incus', 'bucket:latest')).toBe(first.fingerprint);
    expect(await resolvedThroughFront('lxc', 'bucket:latest')).toBe(first.fingerprint);
    latest = first;
  });

  it("keeps a replaced release's files as long as the server keeps them, and deletes them with the server", async () => {
    expectExit(await publish(await image()), 0);
    // A third release with keep-versions 1 retires the two before it.
    const retiring = await publish(await image(), { 'keep-versions': '1' });
    expectExit(retiring, 0);
    await expectBucketServesServer();
    const objects = await bucketObjects();
    // Every file the server still has (named, or retired within the grace) is in the bucket, and nothing else.
    expect([...objects.keys()].filter((key) => key.startsWith('images/')).sort()).toEqual(await serverImages());
    const retired = (await fsp.readFile(path.join(server.simplestreamsDir, '.lxc-publish/retired'), 'utf8'))
      .split('\n')
      .filter((line) => line !== '');
    expect(retired.length).toBeGreaterThan(0);
    for (const line of retired) expect(objects.has(line.split(' ')[1] as string)).toBe(true);

    // The grace ends (the server's and the bucket's retired lists dated three hours back); the
    // next publish takes the files off the server, and off the bucket with them.
    const file = path.join(server.simplestreamsDir, '.lxc-publish/retired');
    const aged = retired.map((line) => line.replace(/^(\d+)/, (stamp) => String(Number(stamp) - 3 * 3600)));
    const { uid, gid } = await fsp.stat(file);
    await fsp.writeFile(file, aged.join('\n') + '\n');
    await fsp.chown(file, uid, gid);
    await ageBucketRetired(3);
    // Larger than a part and than one read from the server: the bucket that joins later (below) gets it in several.
    const fourth = await image(40 << 20);
    const cleaning = await publish(fourth, { 'keep-versions': '1' });
    expectExit(cleaning, 0);
    await expectBucketServesServer();
    const after = await bucketObjects();
    expect([...after.keys()].filter((key) => key.startsWith('images/')).sort()).toEqual(await serverImages());
    for (const line of aged) expect(after.has(line.split(' ')[1] as string)).toBe(false);
    expect(await resolvedThroughFront('incus', 'bucket:latest')).toBe(fourth.fingerprint);
    latest = fourth;
  });

  it('publishes nowhere when the bucket refuses the credentials', async () => {
    const before = await serverFile('streams/v1/images.json');
    const refused = await publish(await image(), {}, credentials('not-the-secret'));
    expectExit(refused, 1);
    expect(refused.stdout).toMatch(
      /^::error title=lxc-publish%3A check the buckets input::Nothing was published on any server: connecting failed on ceph .*Bucket ceph: Reaching bucket lxc-images failed \(HTTP 403.*check the bucket's credentials.*take it out of buckets/m,
    );
    // The secret is masked before anything else is printed, and never shown.
    const mentions = refused.stdout.split('\n').filter((line) => line.includes('not-the-secret'));
    expect(mentions).toEqual(['::add-mask::not-the-secret']);
    expect(refused.stdout.indexOf('::add-mask::not-the-secret')).toBeLessThan(refused.stdout.indexOf('::group::'));
    expect(await serverFile('streams/v1/images.json')).toEqual(before);
    expect(serversOutput(refused).map((entry) => entry.status)).toEqual(['not-published', 'failed']);
  });

  it('gives a bucket that joins later what the server already serves, read from the server', async () => {
    await store.createBucket('late-joiner');
    // The release the server has: unchanged there; the new bucket gets it (and the releases
    // before it that the server still serves) from the server.
    const joined = await runBundle(
      inputsFor(server, latest, {
        aliases: 'bucket:latest',
        buckets: bucketEntry({ name: 'late', bucket: 'late-joiner', prefix: '' }),
      }),
      credentials(),
    );
    expectExit(joined, 0);
    expect(serversOutput(joined).map((entry) => entry.status)).toEqual(['unchanged', 'published']);
    expect((await fsp.stat(latest.rootfs)).size).toBeGreaterThan(32 << 20);
    expect(joined.stdout).toMatch(
      /\[late\] 0 file\(s\) copied from this run's upload, 0 from the server, 0 removed; index updated/,
    );
    // Every file was copied before the registry lock was taken: other runs do not wait for it.
    const copies = [
      ...joined.stdout.matchAll(/^\[late\] images\/\S+: not in the bucket; copying it from the server/gm),
    ];
    expect(copies.length).toBeGreaterThanOrEqual(2);
    const locked = joined.stdout.indexOf('::group::Take the registry lock on every server');
    expect(copies.every((copy) => (copy.index ?? Infinity) < locked)).toBe(true);
    await expectBucketServesServer('', 'late-joiner');
  });

  it('never follows a link on the server when it reads a file for a bucket', async () => {
    await store.createBucket('linked');
    const imagesJson = (await serverFile('streams/v1/images.json')) as Buffer;
    const [victim] = [...named(imagesJson).keys()].filter((file) => file.endsWith('.squashfs'));
    const file = path.join(server.simplestreamsDir, victim as string);
    const saved = `${file}.saved`;
    await fsp.rename(file, saved);
    await fsp.symlink(saved, file);
    let linked: BundleRun;
    try {
      linked = await runBundle(
        inputsFor(server, latest, {
          aliases: 'bucket:latest',
          buckets: bucketEntry({ name: 'linked', bucket: 'linked', prefix: '' }),
        }),
        credentials(),
      );
    } finally {
      await fsp.rm(file);
      await fsp.rename(saved, file);
    }
    expectExit(linked, 1);
    expect(linked.stdout).toMatch(
      /^::error title=lxc-publish%3A check the simplestreams-dir input::.* is \(or lies under\) a symbolic link on the server, so it was not copied to the bucket, and the bucket's index was left as it was/m,
    );
    expect(serversOutput(linked).map((entry) => entry.status)).toEqual(['unchanged', 'failed']);
    // No index in that bucket: it serves nothing rather than an index naming a file it lacks.
    expect(await store.read('linked', 'streams/v1/images.json')).toBeUndefined();
  });

  it('copies an object larger than one copy may be in parts, inside the store', async () => {
    const { Bucket } = await import('../../src/bucket/store.js');
    const bucket = new Bucket({
      name: 'copy',
      endpoint: store.endpoint,
      bucket: BUCKET,
      prefix: 'copy-test/',
      region: 'us-east-1',
      pathStyle: true,
      accessKeyId: store.accessKey,
      secretAccessKey: store.secretKey,
    });
    try {
      const bytes = Buffer.alloc(15 << 20);
      for (let k = 0; k < bytes.length; k += 4096) bytes.writeUInt32LE(k, k);
      const headers = { ContentType: 'application/octet-stream', CacheControl: 'no-store' };
      await bucket.upload('from', Readable.from([bytes]), headers);
      // Parts of 6 MiB: 6, 6 and 3.
      await bucket.copy('from', 'to', { size: bytes.length, headers, metadata: { sha256: 'x' } }, 6 << 20);
      expect((await store.read(BUCKET, 'copy-test/to'))?.equals(bytes)).toBe(true);
      expect(await store.headers(BUCKET, 'copy-test/to')).toMatchObject({ cacheControl: 'no-store', sha256: 'x' });
      await bucket.delete(['from', 'to']);
      expect(await store.keys(BUCKET, 'copy-test/')).toEqual(new Map());
    } finally {
      bucket.close();
    }
  });

  it('finishes on a re-run when the bucket fails after the server committed, never serving an index it cannot', async () => {
    const before = await store.read(BUCKET, `${PREFIX}streams/v1/images.json`);
    // The bucket takes this run's uploads but refuses anything under images/ (a policy written
    // wrong): the copies fail once the server committed, and the index must not be written.
    const next = await image();
    const cut = await withDenied('s3:PutObject', `${PREFIX}images/*`, () => publish(next));
    expectExit(cut, 1);
    expect(cut.stdout).toMatch(
      /^::error title=lxc-publish%3A check the buckets input::The release is published on 127\.0\.0\.1:\d+ but .* ceph .*Bucket ceph: Copying \.lxc-publish\/uploads\/[0-9a-f]+\/file-0 to images\/[0-9a-f]+\.incus\.tar\.xz failed \(HTTP 403/m,
    );
    expect(serversOutput(cut).map((entry) => entry.status)).toEqual(['published', 'failed']);
    // The bucket still serves its index as it was, and every file that index names.
    expect(await store.read(BUCKET, `${PREFIX}streams/v1/images.json`)).toEqual(before);
    const objects = await bucketObjects();
    for (const [file, size] of named(before as Buffer)) expect(objects.get(file)).toBe(size);

    const rerun = await publish(next);
    expectExit(rerun, 0);
    expect(serversOutput(rerun).map((entry) => entry.status)).toEqual(['unchanged', 'published']);
    await expectBucketServesServer();
    expect(await resolvedThroughFront('lxc', 'bucket:latest')).toBe(next.fingerprint);
  });

  it('moves an alias and removes a release on the bucket with the server (alias and remove sub-actions)', async () => {
    const older = await image();
    expectExit(await publish(older, { aliases: 'bucket:older' }), 0);
    const step = (own: Inputs) => ({
      inputs: connectionInputs(server, { ...own, buckets: bucketEntry() }),
      extraEnv: credentials(),
    });
    const moved = await runEntry({
      entry: 'dist/alias/index.js',
      ...step({ fingerprint: older.fingerprint, aliases: 'bucket:latest' }),
    });
    expectExit(moved, 0);
    expect(serversOutput(moved).map((entry) => entry.status)).toEqual(['updated', 'updated']);
    await expectBucketServesServer();
    expect(await resolvedThroughFront('incus', 'bucket:latest')).toBe(older.fingerprint);

    const removed = await runEntry({
      entry: 'dist/remove/index.js',
      ...step({ fingerprint: older.fingerprint, force: 'true' }),
    });
    expectExit(removed, 0);
    expect(serversOutput(removed).map((entry) => entry.status)).toEqual(['removed', 'removed']);
    await expectBucketServesServer();
    expect(await resolvedThroughFront('incus', 'bucket:older')).toBeUndefined();
  });
});

describe('a bucket that fell behind the server', () => {
  const serverOnly = (published: TestImage, extra: Inputs = {}): Promise<BundleRun> =>
    runBundle(inputsFor(server, published, { aliases: 'behind:latest', ...extra }));
  const behind = (published: TestImage, extra: Inputs = {}): Promise<BundleRun> =>
    publish(published, { aliases: 'behind:latest', ...extra });

  it("keeps what its own index named for two hours, though the server's grace for it has ended", async () => {
    const old = await image();
    expectExit(await behind(old), 0);
    const bucketNamed = named((await store.read(BUCKET, `${PREFIX}streams/v1/images.json`)) as Buffer);
    // The release goes from the server alone (steps without the buckets input), and the server's
    // grace for its files ends: the next publish takes them off the server.
    const removed = await runEntry({
      entry: 'dist/remove/index.js',
      inputs: connectionInputs(server, { fingerprint: old.fingerprint, force: 'true' }),
    });
    expectExit(removed, 0);
    const retiredFile = path.join(server.simplestreamsDir, '.lxc-publish/retired');
    const lines = (await fsp.readFile(retiredFile, 'utf8')).split('\n').filter((line) => line !== '');
    const { uid, gid } = await fsp.stat(retiredFile);
    await fsp.writeFile(
      retiredFile,
      lines.map((line) => line.replace(/^(\d+)/, (t) => String(Number(t) - 3 * 3600))).join('\n') + '\n',
    );
    await fsp.chown(retiredFile, uid, gid);
    expectExit(await serverOnly(await image()), 0);
    const onServer = await serverImages();
    const leftServer = [...bucketNamed.keys()].filter((file) => !onServer.includes(file));
    expect(leftServer.length).toBeGreaterThan(0);

    // Something of someone else's below images/ (the action writes only files directly in it).
    await store.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}images/site/logo.png`, Body: Buffer.from('png') }),
    );
    // The bucket catches up: its index stops naming the files the server dropped, and it keeps
    // them for clients of its old index, listed in its own retired list.
    const caughtUp = await behind(await image());
    expectExit(caughtUp, 0);
    await expectBucketServesServer();
    const objects = await bucketObjects();
    for (const file of leftServer) expect([file, objects.has(file)]).toEqual([file, true]);
    const bucketRetired = ((await store.read(BUCKET, `${PREFIX}.lxc-publish/retired`)) as Buffer).toString('utf8');
    for (const file of leftServer)
      expect(bucketRetired).toMatch(new RegExp(`^\\d+ ${file.replace(/\./g, '\\.')}$`, 'm'));
    expect(objects.has('images/site/logo.png')).toBe(true);

    // Two hours on (the bucket's list dated back), the next publish deletes them.
    await ageBucketRetired(3);
    expectExit(await behind(await image()), 0);
    const after = await bucketObjects();
    for (const file of leftServer) expect([file, after.has(file)]).toEqual([file, false]);
    expect(after.has('images/site/logo.png')).toBe(true);
  });

  it('reports a clean-up the store refuses as a warning: the bucket serves the new index', async () => {
    const next = await image();
    const result = await withDenied('s3:DeleteObject', '*', () => behind(next));
    expectExit(result, 0);
    expect(serversOutput(result).map((entry) => entry.status)).toEqual(['published', 'published']);
    expect(result.stdout).toMatch(
      /^::warning title=lxc-publish%3A a bucket was not cleaned up::\[ceph\] Bucket ceph: Deleting .*\(HTTP 403: .*AccessDenied.*check the bucket's credentials/m,
    );
    // What it could not delete is this run's uploads (copied into images/ already); a later run
    // deletes them once they are a day old, or the lifecycle rule the guide asks for.
    const leftover = [...(await bucketObjects()).keys()].filter((key) => key.startsWith('.lxc-publish/uploads/'));
    expect(leftover).toHaveLength(2);
    await store.client.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: leftover.map((key) => ({ Key: `${PREFIX}${key}` })) },
      }),
    );
    await expectBucketServesServer();
  });

  it('leaves the bucket index alone when the lease on the server lock was lost', async () => {
    const { openRegistry } = await import('../harness/connect.js');
    const { Bucket } = await import('../../src/bucket/store.js');
    const { syncBucket, LeaseLostForBucket } = await import('../../src/bucket/sync.js');
    expectExit(await serverOnly(await image()), 0);
    const before = await store.read(BUCKET, `${PREFIX}streams/v1/images.json`);
    const registry = await openRegistry(server);
    const bucket = new Bucket({
      name: 'ceph',
      endpoint: store.endpoint,
      bucket: BUCKET,
      prefix: PREFIX,
      region: 'us-east-1',
      pathStyle: true,
      accessKeyId: store.accessKey,
      secretAccessKey: store.secretKey,
    });
    try {
      await expect(syncBucket(registry, bucket, { lost: () => true })).rejects.toBeInstanceOf(LeaseLostForBucket);
    } finally {
      bucket.close();
      registry.close();
    }
    expect(await store.read(BUCKET, `${PREFIX}streams/v1/images.json`)).toEqual(before);
  });
});

describe('the check sub-action with buckets', () => {
  const step = (own: Inputs) => ({
    entry: 'dist/check/index.js',
    inputs: connectionInputs(server, { 'hash-time': '0', ...own, buckets: bucketEntry() }),
    extraEnv: credentials(),
  });

  it('finds a file the bucket index names but the bucket lacks, and repair brings the bucket up to date', async () => {
    // In step with the server to begin with (a publish with the bucket).
    expectExit(await publish(await image()), 0);
    const healthy = await runEntry(step({}));
    expectExit(healthy, 0);
    const entries = (result: BundleRun) =>
      (JSON.parse(result.outputs['servers'] ?? '[]') as { name: string; status: string; bucket?: string }[]).map(
        (entry) => [entry.name, entry.status, entry.bucket],
      );
    expect(entries(healthy)).toEqual([
      [`${server.host}:${server.sshPort}`, 'healthy', undefined],
      ['ceph', 'healthy', `${BUCKET}/${PREFIX}`],
    ]);

    const imagesJson = (await store.read(BUCKET, `${PREFIX}streams/v1/images.json`)) as Buffer;
    const [lost] = [...named(imagesJson).keys()].filter((file) => file.endsWith('.squashfs'));
    await store.client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: `${PREFIX}${lost as string}` }] } }),
    );
    const found = await runEntry(step({}));
    expectExit(found, 1);
    expect(found.stdout).toMatch(
      new RegExp(
        `^::error title=lxc-publish check::\\[ceph\\] bucket-missing-file: ${(lost as string).replace(/\./g, '\\.')}: .*clients get a 404`,
        'm',
      ),
    );
    expect(entries(found)[1]).toEqual(['ceph', 'problems', `${BUCKET}/${PREFIX}`]);
    expect(found.outputs['errors']).toBe('1');

    const repaired = await runEntry(step({ repair: 'true' }));
    expectExit(repaired, 0);
    expect(repaired.outputs['status']).toBe('repaired');
    expect(repaired.stdout).toContain(`[ceph] ${lost as string}: not in the bucket; copying it from the server`);
    await expectBucketServesServer();
  });
});

describe('the daemons launch from the bucket', () => {
  let daemons: Daemons;
  beforeAll(async () => {
    daemons = await startDaemons(front.caFile);
  }, 240_000);
  afterAll(async () => {
    await daemons?.stop();
  }, 240_000);

  it.each(['incus', 'lxd'] as const)('%s boots a release it downloaded from the bucket', async (kind) => {
    const dir = path.join(work, `boot-${kind}`);
    const bootable = await makeBootableImage(dir, {
      os: 'bucket',
      release: 'bookworm',
      variant: `boot-${kind}`,
      form: 'split',
    });
    const alias = `bucket-boot-${kind}:v1`;
    expectExit(await publish(bootable, { aliases: alias }), 0);
    const daemon = daemons[kind];
    const remote = await daemon.addRemote(freshRemoteUrl(front.url));
    const name = await daemon.launch(`${remote}:${alias}`);
    try {
      expect((await daemon.readFileIn(name, BOOT_MARKER)).trim()).toBe(bootable.marker(name));
      expect(await daemon.configGet(name, 'volatile.base_image')).toBe(bootable.fingerprint);
    } finally {
      await daemon.deleteInstance(name);
    }
  });
});
