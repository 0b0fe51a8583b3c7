import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { inputsFor, inputEnv } from '../__tests__/harness/action.js';
import { makeSplitContainerImage } from '../__tests__/harness/images.js';
import { startRegistry } from '../__tests__/harness/registry.js';
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 't-'));
const registry = await startRegistry();
const image = await makeSplitContainerImage(work, { rootfsBytes: 256 * 1024 * 1024, compression: 'gzip' });
for (const label of ['first', 'again']) {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['dist/index.js'], {
    env: { ...process.env, ...inputEnv(inputsFor(registry, image)), GITHUB_OUTPUT: '/dev/null' },
  });
  child.stdout.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n'))
      if (l && !l.startsWith('::add-mask')) console.log(label, Date.now() - t0, l.slice(0, 120));
  });
  await new Promise((r) => child.on('close', r));
  console.log(label, 'total', Date.now() - t0);
}
const t1 = Date.now();
await registry.scp(image.rootfs, path.join(registry.uploadDir, 'x.squashfs'));
console.log('scp', Date.now() - t1);
const t2 = Date.now();
await registry.ssh('true');
console.log('ssh true', Date.now() - t2);
await registry.stop();
