// Mirrors: one release to three registry servers (separate sshd and nginx, each with its own key
// and host key), through the committed bundle. Every file is read once on the runner; a server
// that refuses, loses its link mid-upload, runs out of disk while staging or whose registry lock
// is held leaves every server as it was; a second run finishes the job, and the servers that
// already have the release report unchanged.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, startBundle, runBundle, type BundleRun, type Inputs } from '../harness/action.js';
import { run, runOk, sleep } from '../harness/exec.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let servers: Registry[];
let work: string;
let count = 0;

beforeAll(async () => {
  servers = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-fleet-'));
});
afterAll(async () => {
  await Promise.all((servers ?? []).map((server) => server.stop()));
  await fsp.rm(work, { recursive: true, force: true });
});

async function image(rootfsBytes = 2 << 20): Promise<TestImage> {
  const dir = path.join(work, `image-${++count}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'fleet', release: 'bookworm', variant: `v${count}`, rootfsBytes });
}

const keyVariable = (k: number): string => `MIRROR_${k}_SSH_KEY`;

/** A mirror entry for `server`, its key in an environment variable; `port` to go through a proxy. */
function mirror(server: Registry, k: number, port = server.sshPort): string {
  return [
    `- name: mirror-${k}`,
    `  host: ${server.host}`,
    `  port: ${port}`,
    `  username: ${server.username}`,
    `  ssh-key-env: ${keyVariable(k)}`,
    `  host-fingerprint: ${server.hostKeyFingerprint}`,
    `  upload-dir: ${server.uploadDir}`,
    `  simplestreams-dir: ${server.simplestreamsDir}`,
  ].join('\n');
}

/** The inputs and environment of a step publishing `published` to the three servers. */
function fleetStep(published: TestImage, extra: Inputs = {}, ports: number[] = []) {
  const [primary, ...mirrors] = servers as [Registry, Registry, Registry];
  const inputs = inputsFor(primary, published, {
    aliases: `fleet:${published.variant}`,
    mirrors: mirrors.map((server, i) => mirror(server, i + 1, ports[i])).join('\n'),
    ...extra,
  });
  const env = Object.fromEntries(mirrors.map((server, i) => [keyVariable(i + 1), server.privateKey]));
  return { inputs, env };
}

interface ServerEntry {
  name: string;
  status: string;
  fingerprint?: string;
  error?: string;
}
const serversOutput = (result: BundleRun): ServerEntry[] =>
  JSON.parse(result.outputs['servers'] ?? '[]') as ServerEntry[];

/** What each server lists under `alias` (its fingerprint, or undefined). */
async function listed(alias: string): Promise<(string | undefined)[]> {
  return Promise.all(
    servers.map(async (server) => {
      const images = await server.incusList();
      return images.find((entry) => entry.aliases.includes(alias))?.fingerprint;
    }),
  );
}

/** The staging trees and commit payloads a server holds (none once a run is over). */
async function leftovers(server: Registry): Promise<string[]> {
  const state = path.join(server.simplestreamsDir, '.lxc-publish');
  const found: string[] = [];
  for (const dir of ['staging', 'next']) {
    const entries = await fsp.readdir(path.join(state, dir)).catch(() => [] as string[]);
    found.push(...entries.map((entry) => `${dir}/${entry}`));
  }
  return found;
}

/** The live index of every server, as text (to show that a failed run changed none). */
const liveIndexes = (): Promise<string[]> =>
  Promise.all(
    servers.map((server) =>
      fsp.readFile(path.join(server.simplestreamsDir, 'streams/v1/images.json'), 'utf8').catch(() => ''),
    ),
  );

/** Bytes the process read (rchar of /proc/<pid>/io), sampled until it exits. */
function readBytesOf(pid: number, finished: Promise<unknown>): Promise<number> {
  let last = 0;
  let done = false;
  void finished.finally(() => (done = true));
  return (async () => {
    while (!done) {
      try {
        const io = readFileSync(`/proc/${pid}/io`, 'utf8');
        last = Number(/rchar: (\d+)/.exec(io)?.[1] ?? last);
      } catch {
        break; // gone
      }
      await sleep(20);
    }
    return last;
  })();
}

describe('mirrors', () => {
  it('publishes one release to three servers, each with its own key and host key, reading each file once', async () => {
    const published = await image(48 << 20);
    const { inputs, env } = fleetStep(published);
    const started = startBundle(inputs, env);
    const readBytes = readBytesOf(started.child.pid as number, started.done);
    const result = await started.done;
    expectExit(result, 0);
    expect(result.outputs['status']).toBe('published');
    expect(result.outputs['fingerprint']).toBe(published.fingerprint);
    const entries = serversOutput(result);
    expect(entries.map((entry) => [entry.name, entry.status, entry.fingerprint])).toEqual([
      [`${servers[0]?.host}:${servers[0]?.sshPort}`, 'published', published.fingerprint],
      ['mirror-1', 'published', published.fingerprint],
      ['mirror-2', 'published', published.fingerprint],
    ]);
    expect(await listed(`fleet:${published.variant}`)).toEqual([
      published.fingerprint,
      published.fingerprint,
      published.fingerprint,
    ]);
    // The squashfs is 48 MiB of random bytes: read once it is about 50 MB, once per server 150.
    const rootfs = (await fsp.stat(published.rootfs)).size;
    const read = await readBytes;
    expect(read).toBeGreaterThan(rootfs);
    expect(read).toBeLessThan(rootfs * 1.5);
    // Each log line of a server's steps names it; the summary shows the fleet.
    expect(result.stdout).toMatch(/\[mirror-2\] Staged /);
    expect(result.summary).toContain('<td>mirror-1</td>');
    // The keys of the mirrors reach no child process and never the log.
    const logged = result.stdout.split('\n').filter((line) => !line.startsWith('::add-mask::'));
    for (const server of servers.slice(1)) {
      const keyLine = server.privateKey.split('\n')[1] as string;
      expect(result.stdout).toContain(`::add-mask::${keyLine}`);
      expect(logged.filter((line) => line.includes(keyLine))).toEqual([]);
    }
    for (const server of servers) expect(await leftovers(server)).toEqual([]);
  });

  it('a server whose host key does not match stops the run before anything is uploaded anywhere', async () => {
    const published = await image();
    const { inputs, env } = fleetStep(published);
    inputs['mirrors'] = (inputs['mirrors'] as string).replace(
      servers[2]?.hostKeyFingerprint as string,
      servers[1]?.hostKeyFingerprint as string,
    );
    const before = await liveIndexes();
    const result = await runBundle(inputs, env);
    expectExit(result, 1);
    expect(result.stdout).toMatch(
      /::error title=lxc-publish%3A check the mirrors input::Nothing was published on any server: connecting failed on mirror-2/,
    );
    expect(await liveIndexes()).toEqual(before);
    for (const server of servers) expect(await fsp.readdir(server.uploadDir)).toEqual([]);
  });

  it('a link cut mid-upload to one server publishes on none; the next run resumes and publishes on all', async () => {
    const published = await image(24 << 20);
    const proxy: TcpProxy = await startProxy({ targetPort: servers[2]?.sshPort as number, cutAfterBytes: 8 << 20 });
    try {
      const before = await liveIndexes();
      const { inputs, env } = fleetStep(published, { retries: '0' }, [servers[1]?.sshPort as number, proxy.port]);
      const cut = await runBundle(inputs, env);
      expectExit(cut, 1);
      expect(proxy.cuts).toBe(1);
      expect(cut.stdout).toContain('Nothing was published on any server: the upload failed on mirror-2');
      expect(serversOutput(cut).map((entry) => entry.status)).toEqual(['not-published', 'not-published', 'failed']);
      expect(await liveIndexes()).toEqual(before);
      for (const server of servers) expect(await leftovers(server)).toEqual([]);

      const again = await runBundle(inputs, env);
      expectExit(again, 0);
      expect(serversOutput(again).map((entry) => entry.status)).toEqual(['published', 'published', 'published']);
      // The first two servers had the whole files; the third resumes what it held.
      expect(again.stdout).toMatch(/\[mirror-1\] .*already on the server from an earlier run/);
      expect(again.stdout).toMatch(/\[mirror-2\] .*resuming; \d+ of \d+ bytes are already on the server/);
      expect(await listed(`fleet:${published.variant}`)).toEqual(Array(3).fill(published.fingerprint));
    } finally {
      await proxy.close();
    }
  });

  it('a full disk while staging on one server publishes on none, and the others staging goes', async () => {
    const published = await image(8 << 20);
    const full = servers[2] as Registry;
    // Room for the state and the index, not for a staged copy of the image.
    const state = path.join(full.simplestreamsDir, '.lxc-publish', 'staging');
    await fsp.mkdir(state, { recursive: true });
    await runOk('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', state]);
    await runOk('chown', [`${full.username}:`, state]);
    try {
      const before = await liveIndexes();
      const { inputs, env } = fleetStep(published);
      const result = await runBundle(inputs, env);
      expectExit(result, 1);
      expect(result.stdout).toContain('Nothing was published on any server: staging failed on mirror-2');
      expect(await liveIndexes()).toEqual(before);
      for (const server of servers) expect(await leftovers(server)).toEqual([]);
    } finally {
      await runOk('umount', ['-l', state]);
    }
    const { inputs, env } = fleetStep(published);
    const again = await runBundle(inputs, env);
    expectExit(again, 0);
    expect(await listed(`fleet:${published.variant}`)).toEqual(Array(3).fill(published.fingerprint));
  });

  it("another writer holding one server's registry lock publishes on none", async () => {
    const published = await image();
    const held = servers[1] as Registry;
    const lock = path.join(held.simplestreamsDir, '.lxc-publish', 'lock');
    // The lock file as the publishing user makes it; -o: the lock is flock's alone.
    await held.ssh(`: >> ${lock}`);
    const holder = run('flock', ['-x', '-o', lock, 'sleep', '8']);
    await sleep(500);
    const before = await liveIndexes();
    const { inputs, env } = fleetStep(published, { 'lock-timeout': '3' });
    const result = await runBundle(inputs, env);
    await holder;
    expectExit(result, 1);
    expect(result.stdout).toContain('Nothing was published on any server: taking the registry lock failed on mirror-1');
    expect(await liveIndexes()).toEqual(before);
    for (const server of servers) expect(await leftovers(server)).toEqual([]);
  });

  it('a server that already has the release reports unchanged while the others publish it', async () => {
    const published = await image();
    const first = await runBundle(
      inputsFor(servers[0] as Registry, published, { aliases: `fleet:${published.variant}` }),
    );
    expectExit(first, 0);
    const { inputs, env } = fleetStep(published);
    const result = await runBundle(inputs, env);
    expectExit(result, 0);
    expect(result.outputs['status']).toBe('published');
    expect(serversOutput(result).map((entry) => entry.status)).toEqual(['unchanged', 'published', 'published']);
    expect(await listed(`fleet:${published.variant}`)).toEqual(Array(3).fill(published.fingerprint));
  });

  it('two runs listing the same servers in opposite orders both publish: the locks are taken in one order', async () => {
    // Run A: servers 0 then 1; run B: servers 1 then 0; started together, each with the same
    // image and each with one of its own. Taken in the order of the inputs, A could hold server
    // 0's lock while waiting for server 1's, and B the reverse, until lock-timeout failed both.
    const [first, second] = servers as [Registry, Registry, Registry];
    const shared = await image(8 << 20);
    const own = [await image(8 << 20), await image(8 << 20)];
    const step = (primary: Registry, other: Registry, otherK: number, published: TestImage) => ({
      inputs: inputsFor(primary, published, {
        aliases: `fleet:${published.variant}`,
        mirrors: mirror(other, otherK),
        'lock-timeout': '60',
      }),
      env: { [keyVariable(otherK)]: other.privateKey },
    });
    const runs = [
      step(first, second, 2, shared),
      step(second, first, 1, shared),
      step(first, second, 2, own[0] as TestImage),
      step(second, first, 1, own[1] as TestImage),
    ].map(({ inputs, env }) => startBundle(inputs, env).done);
    const results = await Promise.all(runs);
    for (const result of results) expectExit(result, 0);
    // One of the two runs of the shared image published it; the other found it there.
    const sharedStatuses = results.slice(0, 2).flatMap((result) => serversOutput(result).map((entry) => entry.status));
    expect(sharedStatuses.filter((status) => status === 'published')).toHaveLength(2);
    expect(sharedStatuses.filter((status) => status === 'unchanged')).toHaveLength(2);
    for (const published of [shared, ...own]) {
      const onServers = (await listed(`fleet:${published.variant}`)).slice(0, 2);
      expect(onServers).toEqual([published.fingerprint, published.fingerprint]);
    }
    for (const server of [first, second]) expect(await leftovers(server)).toEqual([]);
  });
});
