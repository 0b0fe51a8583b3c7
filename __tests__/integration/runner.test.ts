// The wrong runner is named as such, before any connection: a platform other than Linux, and a
// runner without the decompressor the image needs (which once read as "holds no metadata.yaml").
// The committed bundle runs as the runner runs it; the registry port is one nothing listens on,
// so a run that got as far as connecting would fail with "connection refused" instead.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BundleRun, errorLines, type Inputs, runBundle } from '../harness/action.js';
import { runOk } from '../harness/exec.js';
import { closedPort, pathWithout } from '../harness/fixtures.js';
import { makeSplitContainerImage, makeUnifiedImage, type TestImage } from '../harness/images.js';

const TIMEOUT = 60_000;
let work: string;
let port: number;
let xzImage: TestImage;
let zstdImage: TestImage;
let key: string;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-runner-'));
  port = await closedPort();
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(work, 'key')]);
  key = await fsp.readFile(path.join(work, 'key'), 'utf8');
  xzImage = await makeSplitContainerImage(path.join(work, 'xz'), { compression: 'xz' });
  zstdImage = await makeUnifiedImage(path.join(work, 'zstd'), { compression: 'zstd' });
}, TIMEOUT);

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

function inputs(image: TestImage): Inputs {
  return {
    metadata: image.metadata,
    rootfs: image.rootfs,
    host: '127.0.0.1',
    port: String(port),
    username: 'nobody',
    'ssh-key': key,
  };
}

function expectRefused(result: BundleRun, patterns: RegExp[]): void {
  expect(result.code).toBe(1);
  const [error, ...more] = errorLines(result);
  expect(more).toEqual([]);
  for (const pattern of patterns) expect(error).toMatch(pattern);
  expect(error).not.toMatch(/refused|ECONNREFUSED|holds no metadata\.yaml/);
  expect(result.outputs).toEqual({});
}

describe('the runner', () => {
  it(
    'other than Linux: fails first, naming the platform and where to run instead',
    async () => {
      const preload = path.join(work, 'darwin.cjs');
      await fsp.writeFile(preload, "Object.defineProperty(process, 'platform', { value: 'darwin' });\n");
      const result = await runBundle(inputs(xzImage), { NODE_OPTIONS: `--require ${preload}` });
      expectRefused(result, [/runs on Linux runners; this job runs on darwin/, /runs-on: ubuntu-latest/]);
      // Before the inputs are even read: the settings line never appears.
      expect(result.stdout).not.toMatch(/Inspect the image/);
    },
    TIMEOUT,
  );

  it(
    'without xz, for an incus.tar.xz: names the input, the tool and its package',
    async () => {
      const bin = await pathWithout(path.join(work, 'bin-without-xz'), ['xz', 'unxz', 'xzcat']);
      const result = await runBundle(inputs(xzImage), { PATH: bin });
      expectRefused(result, [/metadata: .*incus\.tar\.xz is xz-compressed/, /needs xz on the runner/, /xz-utils/]);
    },
    TIMEOUT,
  );

  it(
    'without zstd, for a unified .tar.zst: the same for zstd',
    async () => {
      const bin = await pathWithout(path.join(work, 'bin-without-zstd'), ['zstd', 'unzstd', 'zstdcat']);
      const result = await runBundle({ ...inputs(zstdImage), rootfs: '' }, { PATH: bin });
      expectRefused(result, [/metadata: .*\.tar\.zst is zstd-compressed/, /apt-get install -y zstd/]);
    },
    TIMEOUT,
  );

  it(
    'with the tools there, the same inputs get as far as connecting (the check above is what stopped them)',
    async () => {
      const result = await runBundle(inputs(xzImage));
      expect(result.code).toBe(1);
      expect(errorLines(result).join('\n')).toMatch(/refused|ECONNREFUSED/i);
    },
    TIMEOUT,
  );
});
