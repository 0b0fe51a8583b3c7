// Hostile content through the committed bundle, against the real loopback registry: metadata.yaml
// values and a convert-command's output that hold workflow commands must not reach the log as
// commands, and no child process the action starts sees the private key.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun } from '../harness/action.js';
import { runOk } from '../harness/exec.js';
import { makeSplitContainerImage, type ImageOptions, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-untrusted-'));
  await fsp.chmod(work, 0o755);
});
afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

let count = 0;
async function newImage(opts: ImageOptions): Promise<TestImage> {
  const dir = path.join(work, `image-${count++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', ...opts });
}

/** What a hostile value holds: a workflow command on a line of its own, and the legacy form. */
const SPOOF = '\n::warning title=Spoofed::x\n  ::error title=Spoofed::z\n##[error]y';

/**
 * The lines of the log that the runner would read as commands and that the action did not write
 * itself. The runner reads a command from a line that starts with "::" after leading blanks,
 * except between ::stop-commands::TOKEN and ::TOKEN::, and the legacy "##[" anywhere in a line.
 * The action's own: add-mask, group/endgroup, its stop-commands markers, and its own warnings and
 * errors (none of which is titled "Spoofed"; their data, after the command's "::", is not read).
 */
function injectedCommands(stdout: string): string[] {
  const injected: string[] = [];
  let stoppedUntil: string | undefined;
  for (const line of stdout.split('\n')) {
    const trimmed = line.trimStart();
    if (trimmed.includes('##[')) injected.push(line);
    if (stoppedUntil !== undefined) {
      if (trimmed === stoppedUntil) stoppedUntil = undefined;
      continue;
    }
    if (!trimmed.startsWith('::')) continue;
    const stop = /^::stop-commands::([0-9a-f]{32})$/.exec(trimmed);
    if (stop) {
      stoppedUntil = `::${stop[1]}::`;
      continue;
    }
    // The command and its properties end at the first "::" after the start; the rest is data.
    const command = trimmed.slice(2, trimmed.indexOf('::', 2) >>> 0);
    const own =
      /^(add-mask|group|endgroup)$/.test(command) ||
      (/^(warning|error)( title=.*)?$/.test(command) && !/Spoofed/.test(command));
    if (!own) injected.push(line);
  }
  if (stoppedUntil !== undefined) injected.push(`(a stop-commands block left open: ${stoppedUntil})`);
  return injected;
}

describe('workflow commands in untrusted text', () => {
  it('are not read from the log: metadata values and convert-command output', async () => {
    const scripts = path.join(registry.root, 'bin');
    await fsp.mkdir(scripts, { recursive: true, mode: 0o755 });
    const convert = path.join(scripts, 'chatty-convert.sh');
    await fsp.writeFile(
      convert,
      [
        '#!/bin/sh',
        'set -eu',
        'printf \'processing %s\\n\' "$1"',
        "printf '::warning title=Spoofed::from convert-command\\n'",
        "printf '    ::error title=Spoofed::indented\\n'",
        "printf 'done ##[error]legacy\\n##[warning]at the start\\n'",
        'incus-simplestreams add --no-default-alias "$1" "$2"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );

    // A description may hold any text; the convert-command prints what it likes.
    const described = await newImage({ variant: 'untrusted', description: `Crynux${SPOOF}` });
    const published = await runBundle(inputsFor(registry, described, { 'convert-command': convert }));
    expect({ code: published.code, stderr: published.stderr }).toEqual({ code: 0, stderr: '' });
    expect(published.stdout).toContain('::warning title=Spoofed::from convert-command'); // printed, inside markers
    expect(injectedCommands(published.stdout)).toEqual([]);

    // Values that are logged (os, variant) and quoted in errors (architecture): whether the
    // image layer takes them or refuses them, the log holds no command of theirs.
    const runs: BundleRun[] = [
      await runBundle(
        inputsFor(registry, await newImage({ os: 'Crynux##[error]y', variant: `spoofed${SPOOF}` }), {
          'convert-command': convert,
        }),
      ),
      await runBundle(inputsFor(registry, await newImage({ variant: 'arch', architecture: `x86_64${SPOOF}` }))),
    ];
    for (const run of runs) {
      expect({ stdout: run.stdout, injected: injectedCommands(run.stdout) }).toEqual({
        stdout: run.stdout,
        injected: [],
      });
      // Published: the values were logged, escaped (JSON, as "\n").
      if (run.code === 0) expect(run.stdout).toContain('\\n::warning title=Spoofed::x\\n');
      if (run.code !== 0) expect(run.stdout).toMatch(/^::error title=lxc-publish%3A check the metadata input::/m);
    }
    expect(runs[1]?.code).toBe(1); // an architecture Incus does not know
  });
});

describe('the private key and child processes', () => {
  // The tarballs are read in the action's own process; the tool it starts on them is the
  // decompressor (xz for incus.tar.xz), which parses hostile input: it is the spy here.
  it('no process the action starts sees the key: an xz earlier on PATH records its environment', async () => {
    const realXz = (await runOk('sh', ['-c', 'command -v xz'])).stdout.trim();
    const bin = path.join(work, 'spy-bin');
    const envLog = path.join(work, 'tool-env.log');
    await fsp.mkdir(bin);
    await fsp.writeFile(
      path.join(bin, 'xz'),
      // The environment as exec gave it (/proc, not `env`: dash drops names such as INPUT_SSH-KEY).
      `#!/bin/sh\n{ tr '\\0' '\\n' < /proc/$$/environ; echo '--- end of one tool environment'; } >> '${envLog}'\n` +
        `exec '${realXz}' "$@"\n`,
      { mode: 0o755 },
    );
    const image = await newImage({ variant: 'env' });
    const result = await runBundle(inputsFor(registry, image), { PATH: `${bin}:${process.env['PATH'] ?? ''}` });
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });

    const recorded = await fsp.readFile(envLog, 'utf8');
    expect(recorded).toContain('--- end of one tool environment'); // xz did run, through the spy
    // Tools that read image files get a minimal environment: no input at all reaches them (the
    // key was already gone from the action's own environment; the other inputs are left out too).
    expect(recorded.split('\n').filter((line) => /^INPUT_/i.test(line))).toEqual([]);
    expect(recorded).toMatch(/^LC_ALL=C$/m);
    const keyLines = registry.privateKey
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length >= 16 && !line.startsWith('-----'));
    expect(keyLines.length).toBeGreaterThan(0);
    expect({
      secretNames: recorded.split('\n').filter((line) => /^INPUT_SSH-KEY/i.test(line)),
      keyMaterial: keyLines.filter((line) => recorded.includes(line)),
      privateKeyMarker: recorded.includes('PRIVATE KEY'),
    }).toEqual({ secretNames: [], keyMaterial: [], privateKeyMarker: false });
  });
});
