// Running the action in tests: the inputs a workflow step would give for a harness registry,
// in-process (through the same input reading as the runner) or as the committed bundle.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, promises as fsp, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExecResult } from './exec.js';
import type { Registry } from './registry.js';
import type { TestImage } from './images.js';

export type Inputs = Record<string, string>;

/** The inputs of a release workflow step publishing `image` to `registry`, host key pinned. */
export function inputsFor(
  registry: Registry,
  image: Pick<TestImage, 'metadata' | 'rootfs'>,
  extra: Inputs = {},
): Inputs {
  return {
    metadata: image.metadata,
    rootfs: image.rootfs,
    host: registry.host,
    port: String(registry.sshPort),
    username: registry.username,
    'ssh-key': registry.privateKey,
    'ssh-key-passphrase': '',
    'host-fingerprint': registry.hostKeyFingerprint,
    'known-hosts': '',
    'upload-dir': registry.uploadDir,
    'simplestreams-dir': registry.simplestreamsDir,
    aliases: '',
    'default-alias': 'false',
    ...extra,
  };
}

/** The connection inputs alone, as the sub-actions (alias/, remove/) take them. */
export function connectionInputs(registry: Registry, extra: Inputs = {}): Inputs {
  const {
    metadata: _m,
    rootfs: _r,
    'upload-dir': _u,
    aliases: _a,
    'default-alias': _d,
    ...connection
  } = inputsFor(registry, { metadata: '', rootfs: '' });
  return { ...connection, ...extra };
}

/** INPUT_* variables as the runner sets them (name upper-cased, spaces to underscores). */
export function inputEnv(inputs: Inputs): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  return env;
}

/** Replaces the INPUT_* variables of this process (for in-process runs). */
export function setProcessInputs(inputs: Inputs): void {
  for (const name of Object.keys(process.env)) if (name.startsWith('INPUT_')) delete process.env[name];
  Object.assign(process.env, inputEnv(inputs));
}

/** Reads a GITHUB_OUTPUT file (`name<<delimiter` blocks, as @actions/core writes them). */
export function parseGithubOutput(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const match = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? '');
    if (match) {
      const [, name, delimiter] = match as unknown as [string, string, string];
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== delimiter; i++) value.push(lines[i] ?? '');
      outputs[name] = value.join('\n');
    } else if (/^[^=]+=/.test(lines[i] ?? '')) {
      const [name, ...rest] = (lines[i] ?? '').split('=');
      outputs[name as string] = rest.join('=');
    }
  }
  return outputs;
}

export interface BundleRun extends ExecResult {
  outputs: Record<string, string>;
  summary: string;
}

/**
 * Runs the committed dist/index.js as the runner does: a fresh node process, inputs as INPUT_*
 * variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, the workspace as working directory.
 */
export async function runBundle(inputs: Inputs, extraEnv: NodeJS.ProcessEnv = {}): Promise<BundleRun> {
  return startBundle(inputs, extraEnv).done;
}

/** Fails, with the end of the run's output, unless the run exited with `code`. */
export function expectExit(result: BundleRun, code: number): void {
  if (result.code !== code) {
    const log = `${result.stdout}\n${result.stderr}`.slice(-8000);
    throw new Error(`the bundle exited with ${result.code}, expected ${code}. Its output:\n${log}`);
  }
}

/** The ::error lines a run printed. */
export const errorLines = (result: BundleRun): string[] =>
  result.stdout.split('\n').filter((line) => line.startsWith('::error'));

/** A unique marker path for proving that an injected command never ran. */
export function markerPath(): string {
  return path.join(os.tmpdir(), `lxc-publish-pwned-${randomUUID()}`);
}

export interface StartedBundle {
  /** The node process running dist/index.js (kill it to simulate a runner that dies). */
  child: ChildProcess;
  /** Settles when the process has exited, killed or not, with its output and outputs file. */
  done: Promise<BundleRun>;
}

/**
 * Like runBundle, but returns at once with the child process, so a test can kill it mid-run.
 * A killed process resolves with code 128 + signal number (137 for SIGKILL).
 */
export function startBundle(inputs: Inputs, extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): StartedBundle {
  return startEntry({ entry: 'dist/index.js', inputs, extraEnv, timeoutMs });
}

/** One of the committed bundles: the action's (dist/index.js) or a sub-action's (dist/alias/index.js …). */
export interface EntryRun {
  entry: string;
  inputs: Inputs;
  extraEnv?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** A command that runs node in its place (e.g. `ip netns exec NS`: the runner in a namespace). */
  prefix?: string[];
}

/** Runs a committed bundle as the runner does and waits for it. */
export function runEntry(run: EntryRun): Promise<BundleRun> {
  return startEntry(run).done;
}

/** Starts a committed bundle as the runner does (see startBundle). */
export function startEntry({
  entry,
  inputs,
  extraEnv = {},
  timeoutMs = 120_000,
  prefix = [],
}: EntryRun): StartedBundle {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lxc-publish-runner-'));
  const outputFile = path.join(dir, 'github_output');
  const summaryFile = path.join(dir, 'step_summary');
  writeFileSync(outputFile, '');
  writeFileSync(summaryFile, '');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_RUN_ID: String(Date.now()),
    GITHUB_RUN_ATTEMPT: '1',
    RUNNER_TEMP: dir,
    GITHUB_WORKSPACE: process.cwd(),
    ...inputEnv(inputs),
    ...extraEnv,
  };
  const argv = [...prefix, process.execPath, path.resolve(entry)];
  const child = spawn(argv[0] as string, argv.slice(1), {
    env,
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<BundleRun>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      void (async () => {
        try {
          resolve({
            code: code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : -1),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
            outputs: parseGithubOutput(await fsp.readFile(outputFile, 'utf8')),
            summary: await fsp.readFile(summaryFile, 'utf8'),
          });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      })();
    });
  });
  return { child, done };
}
