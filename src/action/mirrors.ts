/**
 * The mirrors input: more registry servers to publish the same release to, as a YAML list. Each
 * entry names its host and may set its own port, user, key (through an environment variable the
 * step fills from a secret), host key pins and directories; what it leaves out it takes from the
 * top-level input of the same name (host key pins excepted: those belong to `host`).
 */
import { ActionError } from '../common/errors.js';
import type { RegistryPaths } from '../registry/layout.js';
import type { ConnectOptions } from '../ssh/connect.js';
import { readHostKeyPins, type HostKeyPins } from '../ssh/hostkeys.js';
import { normalisePrivateKey, preparePrivateKey } from '../ssh/keys.js';
import { maskSecrets, parseHost, parsePort, parseRemoteDir, parseUsername } from './input-values.js';
import {
  listError,
  parseYamlList,
  readEntry,
  secretFromEnvironment,
  withSecrets,
  type SecretEnvironment,
} from './yaml-list.js';

/** One server of the fleet: where it is, how to log in, and where its registry lives. */
export interface ServerSettings extends ConnectOptions, RegistryPaths {
  /** How the log, the summary and the servers output name it. */
  name: string;
}

/** The keys a mirror may have. */
export const MIRROR_KEYS = [
  'name',
  'host',
  'port',
  'username',
  'ssh-key-env',
  'ssh-key-passphrase-env',
  'host-fingerprint',
  'known-hosts',
  'upload-dir',
  'simplestreams-dir',
] as const;
type MirrorKey = (typeof MIRROR_KEYS)[number];

/** Servers in one run at most (the primary and its mirrors): each is a connection and a lock. */
export const MAX_SERVERS = 9;

const EXAMPLE =
  'For example:\n  mirrors: |\n    - name: eu\n      host: eu.registry.example\n      host-fingerprint: SHA256:...\n' +
  "and with a key of its own, ssh-key-env: EU_SSH_KEY, with EU_SSH_KEY: ${{ secrets.EU_SSH_KEY }} in the step's env:.";

function mirrorsError(message: string): ActionError {
  return listError('mirrors', message);
}

/** How the mirrors input's list and its entries are read. */
const MIRROR_LIST = {
  input: 'mirrors',
  entries: 'servers',
  noun: 'mirror',
  keyHint: 'host:, port: …',
  example: EXAMPLE,
};

/** What a mirror inherits from the top-level inputs. */
export interface MirrorDefaults extends RegistryPaths {
  port: number;
  username: string;
  privateKey: string;
  passphrase: string;
  /** The top-level known-hosts text: a mirror without pins of its own takes its lines for its host. */
  knownHosts: string;
  strictHostKey: boolean;
  connectTimeout: number;
  /** The primary server: a mirror may not be the same registry again. */
  primary: { host: string; port: number; simplestreamsDir: string; name: string };
}

/** The pins of a mirror: its own, or the top-level known-hosts lines for its host, or none. */
function mirrorPins(
  entry: Partial<Record<MirrorKey, string>>,
  target: { host: string; port: number },
  defaults: MirrorDefaults,
): HostKeyPins {
  const own = { hostFingerprint: entry['host-fingerprint'] ?? '', knownHosts: entry['known-hosts'] ?? '' };
  if (own.hostFingerprint.trim() !== '' || own.knownHosts.trim() !== '')
    return readHostKeyPins(own, target.host, target.port);
  if (defaults.knownHosts.trim() === '') return { fingerprints: [], knownKeys: [] };
  try {
    return readHostKeyPins({ hostFingerprint: '', knownHosts: defaults.knownHosts }, target.host, target.port);
  } catch {
    // The top-level known-hosts has no line for this host: it is unpinned, and strict-host-key decides.
    return { fingerprints: [], knownKeys: [] };
  }
}

/** One entry of the list, checked, with what it leaves out taken from the defaults. */
function readMirror(raw: unknown, position: number, defaults: MirrorDefaults, env: SecretEnvironment): ServerSettings {
  const { entry, label } = readEntry(raw, position, { ...MIRROR_LIST, keys: MIRROR_KEYS });
  if (entry.host === undefined || entry.host.trim() === '') throw mirrorsError(`${label} has no host. ${EXAMPLE}`);
  try {
    const host = parseHost(entry.host);
    const port = entry.port === undefined ? defaults.port : parsePort(entry.port);
    const username = entry.username === undefined ? defaults.username : parseUsername(entry.username);
    let key = { privateKey: defaults.privateKey, passphrase: defaults.passphrase };
    if (entry['ssh-key-env'] !== undefined) {
      const text = secretFromEnvironment(entry['ssh-key-env'], 'ssh-key-env', label, env);
      const passphrase =
        entry['ssh-key-passphrase-env'] === undefined
          ? ''
          : secretFromEnvironment(entry['ssh-key-passphrase-env'], 'ssh-key-passphrase-env', label, env);
      key = preparePrivateKey(text, passphrase, { key: 'ssh-key-env', passphrase: 'ssh-key-passphrase-env' });
      if (key.privateKey !== normalisePrivateKey(text)) maskSecrets([key.privateKey]);
    } else if (entry['ssh-key-passphrase-env'] !== undefined) {
      throw mirrorsError(`${label}: ssh-key-passphrase-env is set without ssh-key-env; name the key's variable too.`);
    }
    const simplestreamsDir =
      entry['simplestreams-dir'] === undefined
        ? defaults.simplestreamsDir
        : parseRemoteDir(entry['simplestreams-dir'], 'simplestreams-dir');
    const uploadDir =
      entry['upload-dir'] === undefined ? defaults.uploadDir : parseRemoteDir(entry['upload-dir'], 'upload-dir');
    return {
      name: entry.name ?? (port === 22 ? host : `${host}:${port}`),
      host,
      port,
      username,
      ...key,
      hostKeyPins: mirrorPins(entry, { host, port }, defaults),
      strictHostKey: defaults.strictHostKey,
      connectTimeout: defaults.connectTimeout,
      simplestreamsDir,
      uploadDir,
    };
  } catch (error) {
    if (!(error instanceof ActionError) || error.input === 'mirrors') throw error;
    // A field's own message names its key as an input: here it is a key of this mirror.
    throw mirrorsError(`${label}: ${error.message}`);
  }
}

/**
 * The mirrors input, read: [] when empty. A private key pasted into it is refused without
 * being repeated (it belongs in a secret, named by ssh-key-env).
 */
export function parseMirrors(
  text: string,
  defaults: MirrorDefaults,
  env: NodeJS.ProcessEnv = process.env,
): ServerSettings[] {
  if (text.trim() === '') return [];
  if (/PRIVATE KEY/i.test(text)) {
    maskSecrets([text]);
    throw mirrorsError(
      'holds a private key. The mirrors input is not secret and shows in the log: put each key in a secret and ' +
        "name the environment variable that carries it with ssh-key-env (EU_SSH_KEY: ${{ secrets.EU_SSH_KEY }} in the step's env:). " +
        'Replace that key now: it was in the workflow file.',
    );
  }
  const document = parseYamlList(text, MIRROR_LIST);
  if (document.length > MAX_SERVERS - 1)
    throw mirrorsError(
      `lists ${document.length} servers; at most ${MAX_SERVERS - 1} mirrors are published to in one run.`,
    );
  const mirrors = withSecrets(env, (secrets) => document.map((raw, i) => readMirror(raw, i + 1, defaults, secrets)));
  const seen = new Map<string, string>([[defaults.primary.name, 'the host input']]);
  const registries = new Set([registryKey(defaults.primary)]);
  for (const mirror of mirrors) {
    if (seen.has(mirror.name))
      throw mirrorsError(`two servers are named ${mirror.name}; give each mirror a name of its own (name:).`);
    seen.set(mirror.name, mirror.host);
    const key = registryKey(mirror);
    if (registries.has(key)) {
      throw mirrorsError(
        `${mirror.name} is the registry at ${mirror.host}:${mirror.port} ${mirror.simplestreamsDir} a second time; ` +
          'each server of the fleet must be a registry of its own.',
      );
    }
    registries.add(key);
  }
  return mirrors;
}

/** What tells registries apart: the same host, port and directory is the same registry. */
export function registryKey(server: { host: string; port: number; simplestreamsDir: string }): string {
  // registry.example. and registry.example are one host.
  return `${server.host.toLowerCase().replace(/\.$/, '')}\n${server.port}\n${server.simplestreamsDir}`;
}
