// Behind a real cache (nginx proxy_cache honouring the origin's headers, as a CDN edge would),
// clients downloading over and over while releases are published, latest moved and old releases
// dropped see one release or the next, whole: never a 404, never a file whose size or sha256
// differs from the index that named it, and the new latest within the index's max-age.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle } from '../harness/action.js';
import { run, runOk } from '../harness/exec.js';
import { startCachingProxy, type CachingProxy } from '../harness/cache.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

/** The index's max-age in the server guide's nginx config. */
const INDEX_MAX_AGE_SECONDS = 10;
const ALIAS = 'app:latest';

let registry: Registry;
let cache: CachingProxy;
/** What latest names once the publishing test is done. */
let latestFingerprint = '';
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  cache = await startCachingProxy(registry);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-cache-test-'));
}, 60_000);
afterAll(async () => {
  await cache?.stop();
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

interface Fetched {
  status: number;
  body: Buffer;
}

function get(agent: https.Agent, url: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

interface Item {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
  combined_squashfs_sha256?: string;
}
type Products = Record<string, { aliases?: string; versions: Record<string, { items: Record<string, Item> }> }>;

/**
 * One download as a client makes it: index.json, images.json, the release ALIAS names (the
 * newest version of the product that carries it), then each of its files, checked against the
 * index that named them. Returns the fingerprint it got, or what went wrong.
 */
async function download(agent: https.Agent): Promise<{ fingerprint?: string; problem?: string }> {
  const index = await get(agent, `${cache.url}/streams/v1/index.json`);
  if (index.status !== 200) return { problem: `index.json: HTTP ${index.status}` };
  const streams = JSON.parse(index.body.toString('utf8')) as { index: { images: { path: string } } };
  const images = await get(agent, `${cache.url}/${streams.index.images.path}`);
  if (images.status !== 200) return { problem: `images.json: HTTP ${images.status}` };
  const products = (JSON.parse(images.body.toString('utf8')) as { products: Products }).products;
  const holders = Object.values(products).filter((product) => (product.aliases ?? '').split(',').includes(ALIAS));
  if (holders.length !== 1) return { problem: `${ALIAS} is on ${holders.length} products` };
  const versions = holders[0]?.versions ?? {};
  const newest = versions[Object.keys(versions).sort().at(-1) ?? ''];
  const items = Object.values(newest?.items ?? {}).filter(
    (item) => item.ftype === 'incus.tar.xz' || item.ftype === 'squashfs',
  );
  if (items.length !== 2) return { problem: `the release ${ALIAS} names has ${items.length} image files` };
  for (const item of items) {
    const file = await get(agent, `${cache.url}/${item.path}`);
    if (file.status !== 200) return { problem: `${item.path}: HTTP ${file.status}` };
    const sha256 = createHash('sha256').update(file.body).digest('hex');
    if (file.body.length !== item.size || sha256 !== item.sha256)
      return {
        problem: `${item.path}: ${file.body.length} bytes, sha256 ${sha256}; the index says ${item.size}, ${item.sha256}`,
      };
  }
  return { fingerprint: items.find((item) => item.ftype === 'incus.tar.xz')?.combined_squashfs_sha256 ?? '' };
}

interface Observation {
  /** When the download started: when its index was asked of the cache. */
  at: number;
  fingerprint?: string;
  problem?: string;
}

describe('a registry behind a caching proxy', () => {
  it('serves every client one release or the next, whole, while releases are published, and the new latest within max-age', async () => {
    const images: TestImage[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      const dir = path.join(work, name);
      await fsp.mkdir(dir);
      images.push(await makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: 'cached' }));
    }
    const [a, b, c, d] = images as [TestImage, TestImage, TestImage, TestImage];
    const publish = async (image: TestImage, aliases: string) => {
      const result = await runBundle(inputsFor(registry, image, { aliases, 'keep-versions': '2' }));
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      return result;
    };
    await publish(a, `app:a,${ALIAS}`);

    // Four clients, each with its own keep-alive connection, download until told to stop. Each
    // download is stamped with its start: when its index was asked of the cache.
    const observations: Observation[] = [];
    let stop = false;
    const clients = Array.from({ length: 4 }, async () => {
      const agent = new https.Agent({ keepAlive: true, ca: await fsp.readFile(cache.caFile, 'utf8') });
      try {
        while (!stop) {
          const at = Date.now();
          const outcome = await download(agent).catch((error: unknown) => ({ problem: String(error) }));
          observations.push({ at, ...outcome });
        }
      } finally {
        agent.destroy();
      }
    });

    // A client that took its index before the publishes, and downloads a's files after
    // keep-versions has dropped a: the origin must still serve them (the two-hour grace).
    const origin = new https.Agent({ ca: await fsp.readFile(registry.caFile, 'utf8') });
    const before = JSON.parse(
      (await get(origin, `${registry.httpsUrl}/streams/v1/images.json`)).body.toString('utf8'),
    ) as {
      products: Products;
    };
    const filesOfA = Object.values(before.products)
      .flatMap((product) => Object.values(product.versions))
      .flatMap((version) => Object.values(version.items))
      .filter((item) => item.ftype === 'incus.tar.xz' || item.ftype === 'squashfs');
    expect(filesOfA).toHaveLength(2);

    // b and c move latest forward (a is dropped: keep-versions 2), b gets it back (aliases
    // only), then d (b is dropped): files clients holding an older index may still be downloading.
    let lastAt = 0;
    for (const [image, aliases] of [
      [b, `app:b,${ALIAS}`],
      [c, `app:c,${ALIAS}`],
      [b, ALIAS],
      [d, `app:d,${ALIAS}`],
    ] as const) {
      const result = await publish(image, aliases);
      lastAt = Date.now();
      expect(JSON.parse(result.outputs['changed-paths'] ?? '[]')).toContain('streams/v1/images.json');
    }
    // Downloads go on for the index's max-age and a few seconds more.
    await new Promise((resolve) => setTimeout(resolve, (INDEX_MAX_AGE_SECONDS + 4) * 1000));
    stop = true;
    await Promise.all(clients);

    expect(observations.filter((o) => o.problem !== undefined)).toEqual([]);
    const known = new Set(images.map((image) => image.fingerprint));
    expect(observations.filter((o) => !known.has(o.fingerprint ?? ''))).toEqual([]);
    // Downloads before and after the publishes, of more than one release.
    expect(observations.some((o) => o.at < lastAt)).toBe(true);
    expect(new Set(observations.map((o) => o.fingerprint)).size).toBeGreaterThan(1);
    // a is no longer in the index, and its files are still served whole to the client that held it.
    const now = await get(origin, `${registry.httpsUrl}/streams/v1/images.json`);
    expect(now.body.toString('utf8')).not.toContain(a.fingerprint);
    for (const item of filesOfA) {
      const file = await get(origin, `${registry.httpsUrl}/${item.path}`);
      expect({ status: file.status, sha256: createHash('sha256').update(file.body).digest('hex') }).toEqual({
        status: 200,
        sha256: item.sha256,
      });
    }
    origin.destroy();
    // The new latest within the index's max-age: the cache's copy of the index is at most that
    // old, so every download that started later (a second of slack) got d.
    const afterAge = observations.filter((o) => o.at > lastAt + (INDEX_MAX_AGE_SECONDS + 1) * 1000);
    expect(afterAge.length).toBeGreaterThan(10);
    expect(afterAge.filter((o) => o.fingerprint !== d.fingerprint)).toEqual([]);
    latestFingerprint = d.fingerprint;
    // The cache did its job: image files and the index came from it, not each time from the origin.
    const log = await fsp.readFile(cache.accessLog, 'utf8');
    const hits = (pattern: RegExp) => log.split('\n').filter((line) => / HIT /.test(line) && pattern.test(line)).length;
    expect(hits(/\/images\/[0-9a-f]{64}\.(squashfs|incus\.tar\.xz)$/)).toBeGreaterThan(10);
    expect(hits(/\/streams\/v1\/images\.json$/)).toBeGreaterThan(10);
  }, 180_000);
});

describe('the incus and lxc clients behind the cache, with its certificate in servercerts/', () => {
  it.each(['incus', 'lxc'] as const)(
    '%s fails on a certificate it does not trust, then resolves latest through the cache once the CA is in servercerts/<remote>.crt',
    async (client) => {
      // A client of its own: no system trust for the cache's CA, no cache of an index.
      const home = await fsp.mkdtemp(path.join(work, `${client}-home-`));
      const conf = path.join(home, 'conf');
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        HOME: home,
        [client === 'incus' ? 'INCUS_CONF' : 'LXD_CONF']: conf,
      };
      for (const name of ['SSL_CERT_FILE', 'SSL_CERT_DIR', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME']) delete env[name];
      await fsp.mkdir(conf, { recursive: true });
      await runOk(client, ['remote', 'add', 'viacache', cache.url, '--protocol=simplestreams', '--public'], { env });
      const untrusted = await run(client, ['image', 'info', `viacache:${ALIAS}`], { env, timeoutMs: 60_000 });
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toMatch(/x509|certificate/i);
      // As TROUBLESHOOTING.md says: the remote's certificate (or its CA's) as servercerts/<remote>.crt.
      await fsp.mkdir(path.join(conf, 'servercerts'), { recursive: true });
      await fsp.copyFile(cache.caFile, path.join(conf, 'servercerts', 'viacache.crt'));
      const trusted = await run(client, ['image', 'info', `viacache:${ALIAS}`], { env, timeoutMs: 60_000 });
      expect({ code: trusted.code, stderr: trusted.stderr }).toEqual({ code: 0, stderr: '' });
      expect(trusted.stdout).toContain(`Fingerprint: ${latestFingerprint}`);
    },
    120_000,
  );
});
