// The action's own registry handle (src/registry/registry.ts), connected to a harness registry
// the way a run connects: for tests that drive the registry layer directly.
import { Registry } from '../../src/registry/registry.js';
import type { Registry as TestRegistry } from './registry.js';

export interface OpenOptions {
  /** Another port (a proxy in front of sshd). */
  port?: number;
  simplestreamsDir?: string;
  uploadDir?: string;
}

export function openRegistry(registry: TestRegistry, options: OpenOptions = {}): Promise<Registry> {
  return Registry.open({
    host: registry.host,
    port: options.port ?? registry.sshPort,
    username: registry.username,
    privateKey: registry.privateKey,
    passphrase: '',
    hostKeyPins: { fingerprints: [registry.hostKeyFingerprint], knownKeys: [] },
    simplestreamsDir: options.simplestreamsDir ?? registry.simplestreamsDir,
    uploadDir: options.uploadDir ?? registry.uploadDir,
  });
}
