// Mirrors: one release to three registry servers (separate sshd and nginx, each with its own key
// and host key), through the committed bundle. Every file is read once on the runner; a server
// that refuses, loses its link mid-upload, runs out of disk while staging or whose registry lock
// is held leaves every server as it was; a second run finishes the job, and the servers that
// already have the release report unchanged.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
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

  it('a commit cut on one server after the others committed is reported by server; the next run converges', async () => {
    const published = await image(4 << 20);
    // A long link to the third server: what the runner sends it is held there long enough to stop.
    const proxy: TcpProxy = await startProxy({ targetPort: servers[2]?.sshPort as number, delayMs: 150 });
    try {
      const { inputs, env } = fleetStep(published, { retries: '0' }, [servers[1]?.sshPort as number, proxy.port]);
      const started = startBundle(inputs, env);
      let seen = '';
      let stopped = false;
      started.child.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (!stopped && seen.includes('::group::Commit on every server')) {
          // Every server is staged and locked: hold what goes to the third, then cut its link.
          stopped = true;
          proxy.pauseUp();
          setTimeout(() => void proxy.close(), 1000);
        }
      });
      const cut = await started.done;
      expectExit(cut, 1);
      expect(stopped).toBe(true);
      expect(cut.stdout).toMatch(
        /^::error title=[^:]*::The release is published on 127\.0\.0\.1:\d+, mirror-1 \(127\.0\.0\.1:\d+\) but its commit failed on mirror-2/m,
      );
      expect(serversOutput(cut).map((entry) => entry.status)).toEqual(['published', 'published', 'failed']);
      expect(cut.summary).toContain('Image published on some servers only');
      expect(cut.outputs['fingerprint']).toBe(published.fingerprint);
      expect(await listed(`fleet:${published.variant}`)).toEqual([
        published.fingerprint,
        published.fingerprint,
        undefined,
      ]);
    } finally {
      await proxy.close();
    }
    // Run again, the third server reachable: the two that have it report unchanged, the third publishes it.
    const { inputs, env } = fleetStep(published);
    const again = await runBundle(inputs, env);
    expectExit(again, 0);
    expect(serversOutput(again).map((entry) => entry.status)).toEqual(['unchanged', 'unchanged', 'published']);
    expect(again.outputs['status']).toBe('published');
    expect(await listed(`fleet:${published.variant}`)).toEqual(Array(3).fill(published.fingerprint));
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
    await held.ssh(`mkdir -p ${path.dirname(lock)} && : >> ${lock}`);
    // Held until the step is over, however long it takes to reach the lock (a loaded machine).
    const holder = spawn('flock', ['-x', '-o', lock, 'sleep', '600'], { stdio: 'ignore' });
    const holderGone = new Promise((resolve) => holder.on('exit', resolve));
    let result: BundleRun;
    try {
      // Held once a try for it fails for that reason (-E: the exit status of a lock held elsewhere).
      while ((await run('flock', ['-n', '-E', '99', lock, 'true'])).code !== 99) await sleep(50);
      const before = await liveIndexes();
      const { inputs, env } = fleetStep(published, { 'lock-timeout': '3' });
      result = await runBundle(inputs, env);
      expect(await liveIndexes()).toEqual(before);
    } finally {
      holder.kill();
      await holderGone;
    }
    expectExit(result, 1);
    expect(result.stdout).toContain('Nothing was published on any server: taking the registry lock failed on mirror-1');
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

describe('the alias and remove sub-actions with mirrors', () => {
  const ALIAS = 'dist/alias/index.js';
  const REMOVE = 'dist/remove/index.js';

  /** A sub-action's step on the three servers (the first as host, the others as mirrors). */
  function subActionStep(own: Inputs) {
    const [primary, ...mirrors] = servers as [Registry, Registry, Registry];
    return {
      inputs: connectionInputs(primary, {
        ...own,
        mirrors: mirrors.map((server, i) => mirror(server, i + 1)).join('\n'),
      }),
      extraEnv: Object.fromEntries(mirrors.map((server, i) => [keyVariable(i + 1), server.privateKey])),
    };
  }

  /** Two releases of one line on every server, `latest` on the second. */
  async function twoReleases(line: string): Promise<[TestImage, TestImage]> {
    const dir = path.join(work, line);
    await fsp.mkdir(dir);
    const made: TestImage[] = [];
    for (const [k, day] of [1, 2].entries()) {
      const release = await makeSplitContainerImage(path.join(dir, `r${k}`), {
        os: 'fleet',
        release: 'bookworm',
        variant: line,
        creationDate: 1764547200 + day * 86400,
      });
      const { inputs, env } = fleetStep(release, { aliases: `${line}:latest, ${line}:r${k}` });
      expectExit(await runBundle(inputs, env), 0);
      made.push(release);
    }
    return made as [TestImage, TestImage];
  }

  it('moves an alias on every server at once, and refuses on all when one server lacks the image', async () => {
    const [first, second] = await twoReleases('day');
    expect(await listed('day:latest')).toEqual(Array(3).fill(second.fingerprint));
    // One more release, on the first two servers only.
    const third = await makeSplitContainerImage(path.join(work, 'day', 'r3'), {
      os: 'fleet',
      release: 'bookworm',
      variant: 'day',
      creationDate: 1764547200 + 3 * 86400,
    });
    for (const server of servers.slice(0, 2))
      expectExit(await runBundle(inputsFor(server, third, { aliases: 'day:r3' })), 0);

    const before = await liveIndexes();
    const refused = await runEntry({
      entry: ALIAS,
      ...subActionStep({ fingerprint: third.fingerprint, aliases: 'day:latest' }),
    });
    expectExit(refused, 1);
    expect(refused.stdout).toMatch(
      /^::error .*Nothing was changed on any server: the change failed on mirror-2 .*no published image has the fingerprint or alias/m,
    );
    expect(await liveIndexes()).toEqual(before);
    expect(serversOutput(refused).map((entry) => entry.status)).toEqual(['not-published', 'not-published', 'failed']);

    const rolledBack = await runEntry({
      entry: ALIAS,
      ...subActionStep({ fingerprint: 'day:r0', aliases: 'day:latest' }),
    });
    expectExit(rolledBack, 0);
    expect(rolledBack.outputs['status']).toBe('updated');
    expect(rolledBack.outputs['fingerprint']).toBe(first.fingerprint);
    expect(serversOutput(rolledBack).map((entry) => entry.status)).toEqual(['updated', 'updated', 'updated']);
    expect(await listed('day:latest')).toEqual(Array(3).fill(first.fingerprint));
    expect(rolledBack.summary).toContain('<td>mirror-2</td>');
  });

  it('refuses an alias that names different images on different servers', async () => {
    const [first, second] = await twoReleases('split');
    // Move split:latest back on the first server only: the alias now differs.
    const one = await runEntry({
      entry: ALIAS,
      inputs: connectionInputs(servers[0] as Registry, { fingerprint: first.fingerprint, aliases: 'split:latest' }),
    });
    expectExit(one, 0);
    const before = await liveIndexes();
    // A dry run refuses it too, as the real run will.
    const dry = await runEntry({
      entry: ALIAS,
      ...subActionStep({ fingerprint: 'split:latest', aliases: 'split:pinned', 'dry-run': 'true' }),
    });
    expectExit(dry, 1);
    expect(dry.stdout).toMatch(/^::error title=lxc-publish%3A check the fingerprint input::.*names different images/m);
    const refused = await runEntry({
      entry: ALIAS,
      ...subActionStep({ fingerprint: 'split:latest', aliases: 'split:pinned' }),
    });
    expectExit(refused, 1);
    expect(refused.stdout).toContain('names different images on the servers of the fleet');
    expect(refused.stdout).toContain(first.fingerprint);
    expect(refused.stdout).toContain(second.fingerprint);
    expect(await liveIndexes()).toEqual(before);
  });

  it('removes a release from every server; a server an earlier run removed it from reports not-found', async () => {
    const [first] = await twoReleases('gone');
    const one = await runEntry({
      entry: REMOVE,
      inputs: connectionInputs(servers[0] as Registry, { fingerprint: first.fingerprint }),
    });
    expectExit(one, 0);
    const result = await runEntry({ entry: REMOVE, ...subActionStep({ fingerprint: first.fingerprint }) });
    expectExit(result, 0);
    expect(result.outputs['status']).toBe('removed');
    expect(serversOutput(result).map((entry) => entry.status)).toEqual(['not-found', 'removed', 'removed']);
    expect(await listed('gone:r0')).toEqual([undefined, undefined, undefined]);
    for (const server of servers) {
      const images = await server.incusList();
      expect(images.map((image) => image.fingerprint)).not.toContain(first.fingerprint);
    }
    // An alias that names nothing on one server which still lists the image is not "removed there
    // already": refused everywhere, naming the fingerprint input.
    const solo = await makeSplitContainerImage(path.join(work, 'gone', 'solo'), {
      os: 'fleet',
      release: 'bookworm',
      variant: 'solo',
    });
    for (const [k, server] of servers.entries()) {
      const aliases = k < 2 ? 'solo:r0' : '';
      expectExit(await runBundle(inputsFor(server, solo, { aliases })), 0);
    }
    const before = await liveIndexes();
    const aliasOnly = await runEntry({ entry: REMOVE, ...subActionStep({ fingerprint: 'solo:r0' }) });
    expectExit(aliasOnly, 1);
    expect(aliasOnly.stdout).toMatch(
      /^::error title=lxc-publish%3A check the fingerprint input::Nothing was changed on any server: the change failed on mirror-2 .*no published image has the fingerprint or alias solo:r0/m,
    );
    expect(await liveIndexes()).toEqual(before);
    // Nowhere any more: refused, naming the input.
    const again = await runEntry({ entry: REMOVE, ...subActionStep({ fingerprint: first.fingerprint }) });
    expectExit(again, 1);
    expect(again.stdout).toContain('no server of the fleet lists that image');
  });
});

describe('the check sub-action with mirrors', () => {
  const CHECK = 'dist/check/index.js';

  interface CheckedEntry {
    name: string;
    status: string;
    report?: { findings: { kind: string; subject: string; detail: string }[] };
  }

  function checkStep(own: Inputs) {
    const [primary, ...mirrors] = servers as [Registry, Registry, Registry];
    return {
      entry: CHECK,
      inputs: connectionInputs(primary, {
        ...own,
        mirrors: mirrors.map((server, i) => mirror(server, i + 1)).join('\n'),
      }),
      extraEnv: Object.fromEntries(mirrors.map((server, i) => [keyVariable(i + 1), server.privateKey])),
    };
  }

  it('checks every server and finds a release only the host input lists (fleet-drift)', async () => {
    const [primary] = servers as [Registry, Registry, Registry];
    const dir = path.join(work, 'drift');
    await fsp.mkdir(dir, { recursive: true });
    const drifted = await makeSplitContainerImage(dir, { os: 'fleet', release: 'bookworm', variant: 'drift' });
    // Published to the host input's server alone, as a step without mirrors (or a change by hand) would.
    expectExit(await runBundle(inputsFor(primary, drifted, { aliases: 'drift:latest' })), 0);

    const reported = await runEntry(checkStep({ 'fail-on': 'never', 'hash-time': '0' }));
    expectExit(reported, 0);
    const entries = JSON.parse(reported.outputs['report'] ?? '{}') as { servers: CheckedEntry[] };
    expect(entries.servers.map((entry) => entry.name)).toEqual([
      `${primary.host}:${primary.sshPort}`,
      'mirror-1',
      'mirror-2',
    ]);
    const drift = (entry: CheckedEntry) =>
      (entry.report?.findings ?? []).filter((finding) => finding.kind === 'fleet-drift');
    expect(drift(entries.servers[0] as CheckedEntry)).toEqual([]);
    for (const entry of entries.servers.slice(1)) {
      const details = drift(entry).map((finding) => `${finding.subject}: ${finding.detail}`);
      expect(details).toContainEqual(expect.stringContaining(drifted.fingerprint.slice(0, 12)));
      expect(details).toContainEqual(
        expect.stringMatching(/^drift:latest \(amd64\): names nothing here and [0-9a-f]{12} on/),
      );
      expect(entry.status).toBe('problems');
    }
    expect(reported.stdout).toMatch(
      /^::warning title=lxc-publish check::\[mirror-1\] fleet-drift: releases: lacks \d+ release\(s\)/m,
    );
    expect(JSON.parse(reported.outputs['servers'] ?? '[]')).toHaveLength(3);
    expect(reported.summary).toContain('<td>mirror-2</td>');

    // fail-on: warning fails on them; the drift is not repairable, so repair changes nothing.
    const failing = await runEntry(checkStep({ 'fail-on': 'warning', 'hash-time': '0', repair: 'true' }));
    expectExit(failing, 1);
    expect(failing.outputs['status']).toBe('problems');
  });
});
