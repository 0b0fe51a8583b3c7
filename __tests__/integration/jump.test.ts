// A registry reachable only through a bastion (jump-host): the committed bundle runs in a network
// namespace of its own that can reach the bastion's sshd and nothing else; the registry's sshd runs
// in another namespace that only the bastion's host reaches (harness/netns.ts). A direct connect
// fails; the publish through the bastion succeeds; a bastion that presents another host key than
// the pinned one is refused before anything is uploaded; a connection cut inside the tunnel is
// retried through a new bastion connection and the upload resumes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BundleRun, errorLines, type Inputs, inputsFor, runEntry } from '../harness/action.js';
import { run } from '../harness/exec.js';
import { snapshotTree } from '../harness/fixtures.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { behindBastion, type BehindBastion } from '../harness/netns.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const MiB = 1024 * 1024;
const TIMEOUT = 240_000;
const canUseNamespaces = process.getuid?.() === 0 && (await run('ip', ['netns', 'list'])).code === 0;

let work: string;
let registry: Registry;
let net: BehindBastion;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  if (!canUseNamespaces) return;
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-jump-'));
  registry = await startRegistry();
  net = await behindBastion(registry);
}, TIMEOUT);

afterAll(async () => {
  if (!canUseNamespaces) return;
  for (const proxy of proxies) await proxy.close();
  await net?.stop();
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

let imageCounter = 0;
function newImage(variant: string, rootfsBytes = MiB): Promise<TestImage> {
  return makeSplitContainerImage(path.join(work, `image-${imageCounter++}`), {
    variant,
    rootfsBytes,
    compression: 'gzip',
  });
}

/** The registry as the bastion reaches it, with the bastion's own key and pinned host key. */
function jumpInputs(image: TestImage, extra: Inputs = {}): Inputs {
  return inputsFor(registry, image, {
    host: net.registryHost,
    port: String(net.registryPort),
    'jump-host': net.bastion.host,
    'jump-port': String(net.bastion.port),
    'jump-ssh-key': net.bastion.privateKey,
    'jump-host-fingerprint': net.bastion.hostKeyFingerprint,
    'connect-timeout': '10',
    ...extra,
  });
}

/** The bundle, run as the runner runs it, from the runner namespace. */
function runInRunnerNamespace(inputs: Inputs, extraEnv: NodeJS.ProcessEnv = {}): Promise<BundleRun> {
  return runEntry({ entry: 'dist/index.js', inputs, prefix: net.runnerPrefix, extraEnv });
}

const describeNs = canUseNamespaces ? describe : describe.skip;

describeNs('a registry behind a bastion', () => {
  it(
    'cannot be reached directly from the runner namespace',
    async () => {
      const image = await newImage('jump-direct');
      const before = await snapshotTree(registry.uploadDir);
      const result = await runInRunnerNamespace(
        inputsFor(registry, image, { host: net.registryHost, port: '22', 'connect-timeout': '5' }),
      );
      expect(result.code).toBe(1);
      expect(errorLines(result).join('\n')).toMatch(
        new RegExp(
          `${net.registryHost.replace(/\./g, '\\.')}:22 (cannot be reached|timed out)|Connecting to .* timed out`,
        ),
      );
      expect(await snapshotTree(registry.uploadDir)).toEqual(before);
    },
    TIMEOUT,
  );

  it(
    'is published to through the bastion (jump-host), both host keys verified',
    async () => {
      const image = await newImage('jump-publish');
      const result = await runInRunnerNamespace(jumpInputs(image, { aliases: 'crynux-node:jump' }));
      expect({ code: result.code, errors: errorLines(result) }).toEqual({ code: 0, errors: [] });
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
      expect(result.outputs['status']).toBe('published');
      expect(result.stdout).toContain(`Bastion host key verified: ssh-ed25519 ${net.bastion.hostKeyFingerprint}`);
      expect(result.stdout).toContain(`Host key verified: ssh-ed25519 ${registry.hostKeyFingerprint}`);
      // The jump key is a secret like ssh-key: registered as one, and gone from the environment.
      const keyLine = net.bastion.privateKey.split('\n')[1] as string;
      expect(result.stdout).toContain(`::add-mask::${keyLine}`);
      const listed = await registry.incusList();
      expect(listed.map((image) => image.fingerprint)).toContain(image.fingerprint);
    },
    TIMEOUT,
  );

  it(
    'also takes the bastion pinned with jump-known-hosts, and the registry key for both hops by default',
    async () => {
      // The bastion accepts only its own key: without jump-ssh-key (the registry's key is used)
      // the bastion refuses it, and the message names jump-ssh-key.
      const image = await newImage('jump-known-hosts');
      const refused = await runInRunnerNamespace(
        jumpInputs(image, {
          'jump-ssh-key': '',
          'jump-host-fingerprint': '',
          'jump-known-hosts': net.bastion.knownHostsLine,
        }),
      );
      expect(refused.code).toBe(1);
      expect(errorLines(refused).join('\n')).toMatch(/check the jump-ssh-key input.*refused the key/);

      const result = await runInRunnerNamespace(
        jumpInputs(image, { 'jump-host-fingerprint': '', 'jump-known-hosts': net.bastion.knownHostsLine }),
      );
      expect({ code: result.code, errors: errorLines(result) }).toEqual({ code: 0, errors: [] });
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
    },
    TIMEOUT,
  );

  it(
    'refuses a bastion whose host key is not the pinned one, before anything is uploaded',
    async () => {
      const image = await newImage('jump-wrong-key');
      const logBefore = (await fsp.readFile(net.bastion.logFile, 'utf8')).length;
      const before = {
        uploads: await snapshotTree(registry.uploadDir),
        tree: await snapshotTree(registry.simplestreamsDir),
      };
      // The registry's fingerprint is pinned for the bastion: a real key, but not the bastion's.
      const result = await runInRunnerNamespace(
        jumpInputs(image, { 'jump-host-fingerprint': registry.hostKeyFingerprint }),
      );
      expect(result.code).toBe(1);
      const message = errorLines(result).join('\n');
      expect(message).toContain('check the jump-host-fingerprint input');
      expect(message).toContain(
        `Host key verification failed for ${net.bastion.host}:${net.bastion.port}: the server presented ssh-ed25519 ${net.bastion.hostKeyFingerprint}`,
      );
      expect(message).toContain('Nothing was uploaded');
      // The registry was never reached: no tunnel was asked for, nothing changed there.
      expect(result.stdout).not.toContain('Host key verified');
      const bastionLog = (await fsp.readFile(net.bastion.logFile, 'utf8')).slice(logBefore);
      expect(bastionLog).toMatch(/Connection from/);
      expect(bastionLog).not.toMatch(/Accepted publickey|Failed publickey/);
      expect({
        uploads: await snapshotTree(registry.uploadDir),
        tree: await snapshotTree(registry.simplestreamsDir),
      }).toEqual(before);
    },
    TIMEOUT,
  );

  it(
    'retries a connection cut inside the tunnel through a new bastion connection, and the upload resumes',
    async () => {
      // The bastion reaches the registry through a proxy on its own loopback that cuts the first
      // connection after 40 MiB of a 64 MiB image; the runner namespace cannot reach that proxy at
      // all. Up to four 4 MiB blocks are half written and a few MiB sit in socket buffers when the
      // cut comes, so what the server holds varies from run to run, but at 40 MiB through it holds
      // several whole blocks: the assertions below compare with what it reported holding.
      const proxy = await startProxy({
        targetHost: net.registryHost,
        targetPort: net.registryPort,
        cutAfterBytes: 40 * MiB,
      });
      proxies.push(proxy);
      const image = await newImage('jump-retry', 64 * MiB);
      const logBefore = (await fsp.readFile(net.bastion.logFile, 'utf8')).length;
      const total = (await fsp.stat(image.rootfs)).size + (await fsp.stat(image.metadata)).size;
      const result = await runInRunnerNamespace(jumpInputs(image, { host: '127.0.0.1', port: String(proxy.port) }), {
        RUNNER_DEBUG: process.env['DEBUG_JUMP'] ?? '',
      });
      if (result.code !== 0) console.log(result.stdout);
      expect({ code: result.code, errors: errorLines(result) }).toEqual({ code: 0, errors: [] });
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
      expect(proxy.cuts).toBe(1);
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
      // Two bastion logins at least: the reconnect opened the bastion connection again.
      const logins =
        (await fsp.readFile(net.bastion.logFile, 'utf8')).slice(logBefore).match(/Accepted publickey/g) ?? [];
      expect(logins.length).toBeGreaterThanOrEqual(2);
      // The retry resumed: whole blocks were kept, and what crossed the link after the cut is the
      // rest of the image (plus SSH framing and the resume's own exchange, well under 1 MiB), not all of it.
      const held = [...result.stdout.matchAll(/: resuming; (\d+) of \d+ bytes are already on the server/g)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
      expect(held).toBeGreaterThanOrEqual(4 * MiB);
      const afterCut = proxy.bytesUp.slice(1).reduce((a, b) => a + b, 0);
      expect(afterCut).toBeLessThan(total - held + MiB);
    },
    TIMEOUT,
  );
});
