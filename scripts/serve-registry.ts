// Starts a throwaway loopback registry and a tiny image to publish to it, writes what a workflow
// step needs to know (connection details, key, image paths) to a file in GITHUB_OUTPUT format,
// and keeps the registry up until it is stopped (SIGTERM/SIGINT). Used by the workflow that runs
// the action with `uses: ./`, and handy for trying the action by hand.
//
//   npx tsx scripts/serve-registry.ts OUTPUT_FILE [ENV_FILE]
//
// With ENV_FILE it also writes the action's inputs for this registry as a dotenv file (the
// format of .env.example), for `node --env-file=ENV_FILE dist/index.js` or @github/local-action.
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeSplitContainerImage } from '../__tests__/harness/images.js';
import { startRegistry } from '../__tests__/harness/registry.js';

const outputFile = process.argv[2];
if (!outputFile) {
  console.error('usage: serve-registry.ts OUTPUT_FILE');
  process.exit(2);
}

const registry = await startRegistry();
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-served-image-'));
const image = await makeSplitContainerImage(work, { os: 'Crynux', release: 'bookworm', variant: 'ci' });

const values: Record<string, string> = {
  host: registry.host,
  port: String(registry.sshPort),
  username: registry.username,
  'ssh-key': registry.privateKey,
  'host-fingerprint': registry.hostKeyFingerprint,
  'known-hosts': registry.knownHostsLine,
  'upload-dir': registry.uploadDir,
  'simplestreams-dir': registry.simplestreamsDir,
  'https-url': registry.httpsUrl,
  'ca-file': registry.caFile,
  metadata: image.metadata,
  rootfs: image.rootfs,
  fingerprint: image.fingerprint,
};
if (process.env['GITHUB_ACTIONS'] === 'true') {
  // A throwaway key, but a key all the same: keep it out of the workflow log.
  for (const line of registry.privateKey.split('\n')) if (line.length >= 8) console.log(`::add-mask::${line}`);
}
const lines = Object.entries(values).map(([name, value]) => {
  const delimiter = `EOF_${randomUUID()}`;
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
});
await fsp.appendFile(outputFile, lines.join(''));
const envFile = process.argv[3];
if (envFile) {
  const inputs = [
    'metadata',
    'rootfs',
    'host',
    'port',
    'username',
    'ssh-key',
    'host-fingerprint',
    'upload-dir',
    'simplestreams-dir',
  ];
  const dotenv = inputs.map((name) => `INPUT_${name.toUpperCase()}=${JSON.stringify(values[name])}`);
  dotenv.push('INPUT_ALIASES="crynux-node:local"');
  await fsp.writeFile(envFile, `${dotenv.join('\n')}\n`, { mode: 0o600 });
}
console.log(`registry up: ssh ${registry.host}:${registry.sshPort}, ${registry.httpsUrl}; image ${image.fingerprint}`);

const stop = async (): Promise<void> => {
  await registry.stop();
  await fsp.rm(work, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
setInterval(() => undefined, 1 << 30);
