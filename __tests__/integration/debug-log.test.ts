// Step debug logging (the runner sets RUNNER_DEBUG=1 when ACTIONS_STEP_DEBUG is true; core.isDebug()
// reads it) and the summary input, run through the committed bundles as the runner runs them.
// With debug on: each remote command as sent (a server script's text once, then its arguments),
// the time of each phase, the exec channels opened, the host key algorithms offered and the key
// presented, and ssh2's own debug lines, all as ::debug:: lines, and no secret (the key's lines,
// the passphrase) anywhere in the log outside ::add-mask:: lines. With debug off: no ::debug::
// line at all. `summary: false` leaves the job summary empty, for the action and the sub-actions.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectionInputs, inputsFor, runBundle, runEntry, type BundleRun, type Inputs } from '../harness/action.js';
import { runOk } from '../harness/exec.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const TIMEOUT = 180_000;
const PASSPHRASE = 'correct horse battery staple 42';

let work: string;
let registry: Registry;
let encryptedKey: string;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-debug-'));
  registry = await startRegistry();
  // An encrypted key the registry authorises, so that the passphrase is a secret in play.
  const keyFile = path.join(work, 'id_ed25519_encrypted');
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'debug-test', '-f', keyFile]);
  encryptedKey = await fsp.readFile(keyFile, 'utf8');
  await fsp.appendFile(path.join(registry.root, 'ssh', 'authorized_keys'), await fsp.readFile(`${keyFile}.pub`));
}, TIMEOUT);

afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

let counter = 0;
const newImage = (variant: string): Promise<TestImage> =>
  makeSplitContainerImage(path.join(work, `image-${counter++}`), { variant, compression: 'gzip' });

/** The secrets of a step: each line of the key (but its BEGIN/END markers), and the passphrase. */
function secretsOf(inputs: Inputs): string[] {
  const lines = (inputs['ssh-key'] ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 8 && !line.startsWith('-----'));
  return [...lines, ...(inputs['ssh-key-passphrase'] ? [inputs['ssh-key-passphrase']] : [])];
}

/** Secrets printed anywhere (stdout, stderr) other than on ::add-mask:: lines. */
function leaked(inputs: Inputs, result: BundleRun): string[] {
  const printed = `${result.stdout}\n${result.stderr}`
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
  return secretsOf(inputs).filter((secret) => printed.includes(secret));
}

const debugLines = (result: BundleRun): string[] =>
  result.stdout.split('\n').filter((line) => line.startsWith('::debug::'));

describe('step debug logging', () => {
  it(
    'logs commands, phases, round trips and the handshake, and no secret',
    async () => {
      const image = await newImage('debug-on');
      const inputs = inputsFor(registry, image, {
        'ssh-key': encryptedKey,
        'ssh-key-passphrase': PASSPHRASE,
        aliases: 'crynux-node:debug',
      });
      const result = await runBundle(inputs, { RUNNER_DEBUG: '1', ACTIONS_STEP_DEBUG: 'true' });
      expect(result.code).toBe(0);
      const lines = debugLines(result);
      const text = lines.join('\n');
      // The commands as sent: the login shell probe, a server script's text and then its arguments.
      // (core.debug writes "%" as %25 and a line break as %0A: one ::debug:: line each.)
      expect(text).toMatch(/^::debug::registry exec #1: printf %25s /m);
      expect(text).toMatch(/^::debug::server script [\w.-]+:%0A/m);
      expect(text).toMatch(/^::debug::registry exec #\d+: sh -c <script [\w.-]+> /m);
      // A script's full text is logged once per name.
      const scriptNames = lines.flatMap((line) => /^::debug::server script ([\w.-]+):/.exec(line)?.[1] ?? []);
      expect(new Set(scriptNames).size).toBe(scriptNames.length);
      // The phases, timed.
      expect(text).toMatch(/^::debug::phase "Inspect the image": \d+\.\d{3} s$/m);
      expect(text).toMatch(/^::debug::phase "Upload": \d+\.\d{3} s$/m);
      expect(text).toMatch(/^::debug::phase "Publish under the registry lock": \d+\.\d{3} s$/m);
      // The round trips, the host key algorithms and the key presented, ssh2's own lines.
      expect(text).toMatch(/^::debug::registry: \d+ exec channels opened \(round trips\)$/m);
      expect(text).toMatch(/^::debug::registry 127\.0\.0\.1:\d+: host key algorithms offered: /m);
      expect(text).toContain(`host key presented: ssh-ed25519 ${registry.hostKeyFingerprint} (pinned)`);
      expect(text).toMatch(/^::debug::ssh2 registry: /m);
      // Not a single secret outside the lines that register it as one; each is registered.
      expect(leaked(inputs, result)).toEqual([]);
      for (const secret of secretsOf(inputs)) expect(result.stdout).toContain(`::add-mask::${secret}`);
    },
    TIMEOUT,
  );

  it(
    'prints no ::debug:: line without step debug',
    async () => {
      const image = await newImage('debug-off');
      const inputs = inputsFor(registry, image, { 'ssh-key': encryptedKey, 'ssh-key-passphrase': PASSPHRASE });
      const result = await runBundle(inputs);
      expect(result.code).toBe(0);
      expect(debugLines(result)).toEqual([]);
      expect(leaked(inputs, result)).toEqual([]);
      // The summary is on by default.
      expect(result.summary).toContain('Image published');
    },
    TIMEOUT,
  );
});

describe('summary: false', () => {
  it(
    'leaves the job summary out, for the action and both sub-actions, on success and on failure',
    async () => {
      const image = await newImage('no-summary');
      const published = await runBundle(inputsFor(registry, image, { summary: 'false' }));
      expect(published.code).toBe(0);
      expect(published.summary).toBe('');

      const failed = await runBundle(inputsFor(registry, image, { summary: 'false', 'host-fingerprint': 'nope' }));
      expect(failed.code).toBe(1);
      expect(failed.summary).toBe('');
      const failedWithSummary = await runBundle(inputsFor(registry, image, { 'host-fingerprint': 'nope' }));
      expect(failedWithSummary.summary).toContain('Image not published');

      const connection = connectionInputs(registry);
      const fingerprint = published.outputs['fingerprint'] as string;
      for (const [entry, own] of [
        ['dist/alias/index.js', { fingerprint, aliases: 'crynux-node:no-summary', 'dry-run': 'true' }],
        ['dist/remove/index.js', { fingerprint, 'dry-run': 'true' }],
      ] as const) {
        const quiet = await runEntry({ entry, inputs: { ...connection, ...own, summary: 'false' } });
        expect(quiet.code).toBe(0);
        expect(quiet.summary).toBe('');
        const shown = await runEntry({ entry, inputs: { ...connection, ...own } });
        expect(shown.code).toBe(0);
        expect(shown.summary).toContain('Dry run');
      }
    },
    TIMEOUT,
  );
});
