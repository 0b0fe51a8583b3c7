// Updates through a vcdiff delta, with real daemons. Release A of a line is published with
// `latest` and copied by incusd and LXD with --auto-update; release B (A with one file more) is
// published with `latest` and comes with a small delta from A. B's squashfs is then taken out of
// nginx's reach, each daemon is restarted (which clears its cached index and runs the auto-update)
// and must end up holding B, having downloaded the delta and not the squashfs.
//
// Then what can go wrong on the server: an xdelta3 whose deltas are damaged (the decode check
// before publishing catches it, the publish goes on without that delta), and no xdelta3 at all
// (a warning and no delta, or an error before any upload with require-deltas). The registry
// listens on two more SSH ports whose sessions get a PATH of their own for these.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun, type Inputs } from '../harness/action.js';
import { type DaemonKind, type Daemons, freshRemoteUrl, startDaemons, stopDaemonTest } from '../harness/daemons.js';
import { run, sleep } from '../harness/exec.js';
import { closedPort, pathWithout } from '../harness/fixtures.js';
import { makeBootableImage, type BootableImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { accessLog } from '../harness/tree.js';

let registry: Registry;
let daemons: Daemons;
let work: string;
let noXdeltaPort: number;
let badXdeltaPort: number;

const SERVER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const RELEASE_A = 1764547200; // 2025-12-01
const DAY = 86400;

/** An xdelta3 that damages every delta it makes (one byte in the middle), and decodes as the real one. */
const DAMAGING_XDELTA3 = `#!/bin/sh
if [ "$1" = -e ]; then
  /usr/bin/xdelta3 "$@" || exit $?
  for out; do :; done
  size=$(stat -c %s -- "$out")
  offset=$((size / 2))
  byte=$(od -An -tu1 -j "$offset" -N1 -- "$out" | tr -d ' ')
  printf "$(printf '\\\\%03o' $(((byte + 1) % 256)))" | dd of="$out" bs=1 seek="$offset" conv=notrunc 2>/dev/null
  exit 0
fi
exec /usr/bin/xdelta3 "$@"
`;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-deltas-'));
  await fsp.chmod(work, 0o755);
  const withoutXdelta = await pathWithout(path.join(work, 'bin-without-xdelta3'), ['xdelta3']);
  const damaging = path.join(work, 'bin-damaging-xdelta3');
  await fsp.mkdir(damaging, { mode: 0o755 });
  await fsp.writeFile(path.join(damaging, 'xdelta3'), DAMAGING_XDELTA3, { mode: 0o755 });
  noXdeltaPort = await closedPort();
  badXdeltaPort = await closedPort();
  while (badXdeltaPort === noXdeltaPort) badXdeltaPort = await closedPort();
  registry = await startRegistry({
    sshExtraConfig: [
      `Port ${noXdeltaPort}`,
      `Port ${badXdeltaPort}`,
      `Match LocalPort ${noXdeltaPort}`,
      `  SetEnv PATH=${withoutXdelta}`,
      `Match LocalPort ${badXdeltaPort}`,
      `  SetEnv PATH=${damaging}:${SERVER_PATH}`,
    ].join('\n'),
  });
  daemons = await startDaemons(registry.caFile);
});
afterAll(() => stopDaemonTest({ daemons, registry, work }));

async function publish(image: BootableImage, inputs: Inputs, port = registry.sshPort): Promise<BundleRun> {
  return runBundle(inputsFor(registry, image, { port: String(port), ...inputs }));
}

async function published(image: BootableImage, inputs: Inputs, port?: number): Promise<BundleRun> {
  const result = await publish(image, inputs, port);
  if (result.code !== 0)
    throw new Error(`the action failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

interface Item {
  ftype: string;
  path: string;
  size: number;
  delta_base?: string;
}
type Index = { products: Record<string, { versions: Record<string, { items: Record<string, Item> }> }> };

const liveIndex = async (): Promise<Index> =>
  JSON.parse(await fsp.readFile(path.join(registry.simplestreamsDir, 'streams', 'v1', 'images.json'), 'utf8')) as Index;

/** The items of the version `serial` in the product `product`. */
async function itemsOf(product: string, serial: string): Promise<Item[]> {
  return Object.values((await liveIndex()).products[product]?.versions[serial]?.items ?? {});
}

/** Two releases of one line, B being A with one file more (same init token, empty payload). */
async function releases(variant: string): Promise<[BootableImage, BootableImage]> {
  const line = { os: 'Crynux', release: 'bookworm', variant, form: 'split', rootfsBytes: 0 } as const;
  const token = `token-${variant}`;
  const a = await makeBootableImage(path.join(work, `${variant}-a`), { ...line, token, creationDate: RELEASE_A });
  const b = await makeBootableImage(path.join(work, `${variant}-b`), {
    ...line,
    token,
    creationDate: RELEASE_A + 30 * DAY,
    extraFiles: { 'etc/crynux-release': 'v2.7.0\n' },
  });
  return [a, b];
}

const deltasOf = (result: BundleRun) =>
  JSON.parse(result.outputs['deltas'] ?? 'null') as Array<{ base: string; size: number; share: number }>;

describe('a daemon holding A refreshes to B through the delta', () => {
  let a: BootableImage;
  let b: BootableImage;
  let first: BundleRun;
  let second: BundleRun;
  let squashfs: Item;
  let delta: Item;
  const remotes: Partial<Record<DaemonKind, string>> = {};

  beforeAll(async () => {
    [a, b] = await releases('delta-node');
    first = await published(a, { aliases: 'crynux-node:latest' });
    // Each daemon copies A by the moving alias, to be kept up to date.
    for (const kind of ['incus', 'lxd'] as const) {
      const daemon = daemons[kind];
      const remote = await daemon.addRemote(freshRemoteUrl(registry.httpsUrl));
      remotes[kind] = remote;
      await daemon.cliOk(['image', 'copy', `${remote}:crynux-node:latest`, 'local:', '--auto-update'], 180_000);
      expect(await daemon.localImages()).toEqual([a.fingerprint]);
    }
    second = await published(b, { aliases: 'crynux-node:latest' });
    const items = await itemsOf(second.outputs['product']!, second.outputs['serial']!);
    squashfs = items.find((item) => item.ftype === 'squashfs')!;
    delta = items.find((item) => item.ftype === 'squashfs.vcdiff')!;
  });

  it('publishes A without a delta (no earlier release) and B with one small delta from A', () => {
    expect(deltasOf(first)).toEqual([]);
    const made = deltasOf(second);
    expect(made).toHaveLength(1);
    expect(made[0]!.base).toBe(first.outputs['serial']);
    expect(made[0]!.size).toBe(delta.size);
    expect(made[0]!.share).toBeCloseTo(delta.size / squashfs.size, 5);
    expect(made[0]!.size).toBeLessThan(squashfs.size / 10);
    console.log(`delta A -> B: ${delta.size} bytes for a squashfs of ${squashfs.size} bytes`);
    expect(delta.delta_base).toBe(first.outputs['serial']);
    expect(second.summary).toContain('Deltas');
  });

  it("keeps A's metadata item as the delta base in B's product, with an LXD twin, not listed as an image", async () => {
    const product = (await liveIndex()).products[second.outputs['product']!]!;
    const stub = product.versions[first.outputs['serial']!]!;
    expect(
      Object.values(stub.items)
        .map((item) => item.ftype)
        .sort(),
    ).toEqual(['incus.tar.xz', 'lxd.tar.xz']);
    for (const listed of [await registry.incusList(), await registry.lxcList()]) {
      expect(listed.map((image) => image.fingerprint).sort()).toEqual([a.fingerprint, b.fingerprint].sort());
    }
  });

  describe("with B's squashfs out of nginx's reach", () => {
    const hidden = () => path.join(registry.simplestreamsDir, `${squashfs.path}.hidden`);
    beforeAll(async () => {
      // Moved aside rather than chmod 000: the harness's nginx runs as root, which reads any file.
      await fsp.rename(path.join(registry.simplestreamsDir, squashfs.path), hidden());
      const status = await run('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--cacert',
        registry.caFile,
        `${registry.httpsUrl}/${squashfs.path}`,
      ]);
      expect(status.stdout).not.toBe('200');
    });
    afterAll(async () => {
      await fsp.rename(hidden(), path.join(registry.simplestreamsDir, squashfs.path));
    });

    it.each(['incus', 'lxd'] as const)('%s: a restart runs the auto-update, which applies the delta', async (kind) => {
      const daemon = daemons[kind];
      const logBefore = (await accessLog(registry)).length;
      await daemon.restart();
      let images = await daemon.localImages();
      for (let waited = 0; waited < 60_000 && !images.includes(b.fingerprint); waited += 1000) {
        await sleep(1000);
        images = await daemon.localImages();
      }
      if (!images.includes(b.fingerprint)) {
        // The auto-update did not run on start: ask for it.
        await daemon.cliOk(['image', 'refresh', a.fingerprint], 180_000);
        images = await daemon.localImages();
      }
      // The daemon deletes A once B is in place: a moment after B first shows.
      for (let waited = 0; waited < 30_000 && images.includes(a.fingerprint); waited += 500) {
        await sleep(500);
        images = await daemon.localImages();
      }
      expect(images).toEqual([b.fingerprint]);
      const agent = kind === 'incus' ? '"Incus ' : '"LXD ';
      const lines = (await accessLog(registry))
        .slice(logBefore)
        .split('\n')
        .filter((line) => line.includes(agent));
      const fetched = (file: string) =>
        lines.filter((line) => line.includes(`GET /${file} `) && / 200 \d+ /.test(line));
      expect(fetched(delta.path)).toHaveLength(1);
      expect(fetched(squashfs.path)).toHaveLength(0);
      await daemon.cliOk(['image', 'delete', b.fingerprint]);
      await daemon.cliOk(['remote', 'remove', remotes[kind]!]);
    });
  });
});

describe('a damaged delta is caught before publishing', () => {
  it('publishes B without it, warning that the check failed', async () => {
    const [a, b] = await releases('delta-damaged');
    await published(a, {});
    const second = await published(b, {}, badXdeltaPort);
    expect(second.outputs['fingerprint']).toBe(b.fingerprint);
    expect(second.outputs['status']).toBe('published');
    expect(deltasOf(second)).toEqual([]);
    expect(second.stdout).toMatch(
      /::warning::No delta from release \d{12}: the check before publishing failed: decoding it against its base did not give the new squashfs/,
    );
    const items = await itemsOf(second.outputs['product']!, second.outputs['serial']!);
    expect(items.filter((item) => item.ftype === 'squashfs.vcdiff')).toEqual([]);
    const left = (await fsp.readdir(path.join(registry.simplestreamsDir, 'images'))).filter((name) =>
      name.endsWith('.vcdiff'),
    );
    // Only the delta of the first describe: the damaged one never reached images/.
    expect(left).toHaveLength(1);
  });
});

describe('no xdelta3 on the server', () => {
  let a: BootableImage;
  let b: BootableImage;
  beforeAll(async () => {
    [a, b] = await releases('delta-no-tool');
    await published(a, {});
  });

  it('require-deltas: fails before uploading, naming the input and the install line', async () => {
    const before = await liveIndex();
    const result = await publish(b, { 'require-deltas': 'true' }, noXdeltaPort);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/require-deltas: xdelta3 is not installed on the server/);
    expect(result.stdout).toContain('apt install xdelta3');
    expect(result.stdout).toContain('Nothing was uploaded');
    expect(await liveIndex()).toEqual(before);
  });

  it('otherwise publishes without deltas, with a warning and the install line', async () => {
    const result = await published(b, {}, noXdeltaPort);
    expect(result.outputs['fingerprint']).toBe(b.fingerprint);
    expect(deltasOf(result)).toEqual([]);
    expect(result.stdout).toMatch(/::warning::xdelta3 is not installed on the server.*apt install xdelta3/);
  });
});
