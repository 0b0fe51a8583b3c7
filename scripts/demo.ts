// `npm run demo`: starts a throwaway registry on loopback (sshd, nginx with TLS,
// incus-simplestreams), builds a tiny container image, publishes it with the committed bundle
// exactly as a runner would, and shows what the incus client then lists.
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle } from '../__tests__/harness/action.js';
import { runOk } from '../__tests__/harness/exec.js';
import { makeSplitContainerImage } from '../__tests__/harness/images.js';
import { startRegistry } from '../__tests__/harness/registry.js';

const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-demo-'));
const registry = await startRegistry();
try {
  console.log(`Registry: sshd on ${registry.host}:${registry.sshPort}, nginx on ${registry.httpsUrl}`);
  console.log(`Host key: ${registry.hostKeyFingerprint}\n`);

  const image = await makeSplitContainerImage(work, {
    os: 'Crynux',
    release: 'bookworm',
    variant: 'demo',
    description: 'Crynux demo image',
  });
  console.log(`Built ${path.basename(image.metadata)} + ${path.basename(image.rootfs)} in ${work}\n`);

  const inputs = inputsFor(registry, image, { aliases: 'crynux-node:demo\ncrynux-node:latest' });
  console.log('Running dist/index.js with these inputs (ssh-key omitted):');
  for (const [name, value] of Object.entries(inputs)) {
    if (name !== 'ssh-key' && value !== '') console.log(`  ${name}: ${JSON.stringify(value)}`);
  }
  const result = await runBundle(inputs);
  console.log('\n--- action log ---');
  console.log(
    result.stdout
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n')
      .trim(),
  );
  console.log('--- end of action log ---\n');
  if (result.code !== 0) {
    console.error(`The action failed (exit ${result.code}).`);
    process.exitCode = 1;
  } else {
    console.log('Outputs:');
    for (const [name, value] of Object.entries(result.outputs)) console.log(`  ${name}=${value}`);
    await registry.incusList(); // adds the remote "harness" to the demo's own incus config
    const table = await runOk('incus', ['image', 'list', 'harness:'], { env: registry.clientEnv() });
    console.log(`\n$ incus image list harness:\n${table.stdout}`);
    console.log(`fingerprint: ${result.outputs['fingerprint']}`);
  }
} finally {
  await registry.stop();
  await fsp.rm(work, { recursive: true, force: true });
}
