/**
 * Reads and checks the action's inputs (declared in action.yml) into one typed settings object.
 * Everything here is local: a bad input is reported before any file is read or any connection made.
 */
import * as core from '@actions/core';
import { ActionError } from '../common/errors.js';
import { refuseUndeclaredInputs } from './declared.js';
import { DECLARED_INPUTS } from './declared-inputs.js';
import { parseMirrors, type ServerSettings } from './mirrors.js';
import { parseBuckets } from './buckets.js';
import type { BucketSettings } from '../bucket/store.js';
import type { RootfsLimits } from '../image/rootfs.js';
import { defaultRemoteName, validatePublicUrl, validateRemoteName } from '../public/remote.js';
import type { DeltaOptions } from '../registry/deltas.js';
import type { RegistryPaths } from '../registry/layout.js';
import type { PublicationOptions } from '../registry/publication.js';
import type { UploadOptions } from '../registry/upload.js';
import { DEFAULT_FOLLOWED_ALIASES, followedAliases } from '../simplestreams/retention.js';
import type { ConnectOptions, SshEndpoint } from '../ssh/connect.js';
import { JUMP_PIN_INPUTS, readHostKeyPins } from '../ssh/hostkeys.js';
import { JUMP_KEY_INPUTS, normalisePrivateKey, preparePrivateKey } from '../ssh/keys.js';
import {
  forgetSecretInputs,
  isValidAlias,
  maskSecrets,
  parseAliases,
  parseConvertCommand,
  parseHost,
  parseLocalPath,
  parsePort,
  parseRemoteDir,
  parseUsername,
  readBoolean,
  readChoice,
  readWholeNumber,
} from './input-values.js';

/** The inputs every entry point shares: the connection, the registry, its lock and the LXD items. */
export interface RegistrySettings extends ConnectOptions {
  simplestreamsDir: string;
  strictHostKey: boolean;
  connectTimeout: number;
  /** Seconds to wait for the registry lock. */
  lockTimeout: number;
  /** Whether every version also carries items for LXD clients. */
  lxdCompat: boolean;
  /** Whether to write the job summary (the summary input; default true). */
  summary: boolean;
}

/**
 * Everything a publish does is decided by this object, read from the inputs. Each layer reads
 * its own part (ConnectOptions, RegistryPaths, UploadOptions, PublicationOptions).
 */
export interface Settings extends RegistrySettings, RegistryPaths, UploadOptions, PublicationOptions, DeltaOptions {
  metadataPath: string;
  /** Empty for a unified tarball. */
  rootfsPath: string;
  aliases: string[];
  defaultAlias: boolean;
  /** When a raw rootfs tarball is turned into a squashfs on the runner. */
  convertRootfs: 'auto' | 'always' | 'never';
  /** What a raw rootfs tarball may hold (max-rootfs-entries, max-rootfs-size in bytes). */
  rootfsLimits: RootfsLimits;
  /** Seconds the conversion of a rootfs tarball may take (convert-rootfs-timeout). */
  convertRootfsTimeout: number;
  /** The registry's public HTTPS address to check after publishing; '' to skip the check. */
  publicUrl: string;
  /** The remote name the job summary's commands use. */
  remoteName: string;
  /** How long the public check keeps retrying (CDN caches). */
  publicCheckTimeout: number;
  /** What a failed public check does: fail the step, warn, or no check at all. */
  publicCheck: 'fail' | 'warn' | 'off';
  /** Report what a publish would do, and change nothing on the server. */
  dryRun: boolean;
  /** How the log, the summary and the servers output name the host input's server. */
  serverName: string;
  /** More registry servers to publish the same release to (the mirrors input). */
  mirrors: ServerSettings[];
  /** Buckets that serve what the host input's server does (the buckets input). */
  buckets: BucketSettings[];
}

/** The alias and remove sub-actions: an image already published, named by `fingerprint`. */
export interface DayTwoSettings extends RegistrySettings {
  /** How messages and the servers output name the host input's server. */
  serverName: string;
  /** More registry servers to make the same change on (the mirrors input). */
  mirrors: ServerSettings[];
  /** Buckets that serve what the host input's server does (the buckets input). */
  buckets: BucketSettings[];
  /** A fingerprint, the start of one, or an alias (resolved on the live index). */
  reference: string;
  /** For the alias sub-action. */
  aliases: string[];
  dryRun: boolean;
  /** For the remove sub-action: remove even an image that holds a followed alias. */
  force: boolean;
}

/** The check sub-action: the registry doctor. */
export interface CheckSettings extends RegistrySettings {
  /** How messages and the servers output name the host input's server. */
  serverName: string;
  /** More registry servers to check in the same step (the mirrors input). */
  mirrors: ServerSettings[];
  /** Buckets to check against the host input's server (the buckets input). */
  buckets: BucketSettings[];
  repair: boolean;
  /** The least severity that fails the step; never: report only. */
  failOn: 'error' | 'warning' | 'never';
  /** Seconds to spend hashing the files the index names. */
  hashSeconds: number;
}

const DEFAULT_UPLOAD_DIR = '/var/www/lxc/uploads';
const DEFAULT_SIMPLESTREAMS_DIR = '/var/www/lxc/simplestreams';

/** The secret a workflow usually passes to each required connection input (as the README's examples name it). */
const USUAL_SECRETS: Record<string, string> = {
  host: 'REGISTRY_HOST',
  username: 'REGISTRY_USER',
};

/**
 * A required input's value. Empty, it is most often a secret that does not reach this job: an
 * undefined secret, one of an environment the job does not name, or any secret in a run for a
 * pull request from a fork all read as ''.
 */
export function requiredInput(name: string): string {
  const value = core.getInput(name);
  if (value.trim() !== '') return value;
  const secret = USUAL_SECRETS[name];
  throw new ActionError(
    `${name}: empty.` +
      (secret
        ? ` It usually comes from a secret (${name}: \${{ secrets.${secret} }}), and a secret reads as empty when it is ` +
          'not defined in the repository or organization, belongs to an environment this job does not name ' +
          '(environment:), or the run is for a pull request from a fork (secrets are not passed to those). Define ' +
          `${secret} under Settings → Secrets and variables → Actions, or give the value another way.`
        : ` Give it in the step's with: block.`),
    name,
  );
}

/** Reads the inputs every entry point shares (INPUT_* variables). */
function readRegistrySettings(entry: keyof typeof DECLARED_INPUTS): RegistrySettings {
  // Secrets first, so that nothing printed while checking the rest can reveal them.
  const rawKey = core.getInput('ssh-key');
  const passphrase = core.getInput('ssh-key-passphrase');
  const rawJumpKey = core.getInput('jump-ssh-key');
  const jumpPassphrase = core.getInput('jump-ssh-key-passphrase');
  maskSecrets([rawKey, passphrase, rawJumpKey, jumpPassphrase]);
  forgetSecretInputs();
  // Then a misspelt input, before any setting is read at its default in its place.
  refuseUndeclaredInputs(DECLARED_INPUTS[entry]);

  const host = parseHost(requiredInput('host'));
  const port = parsePort(core.getInput('port'));
  // The runner passes the default (22) when the input is left out: empty is an unset secret.
  if (core.getInput('port').trim() === '') core.notice('port: empty (an unset REGISTRY_PORT secret?), so 22 was used.');
  const username = parseUsername(requiredInput('username'));
  const { privateKey, passphrase: keyPassphrase } = preparePrivateKey(rawKey, passphrase);
  // A PKCS#8 key comes back re-encoded: mask that form too.
  if (privateKey !== normalisePrivateKey(rawKey)) maskSecrets([privateKey]);
  const jump = readJumpSettings(
    { privateKey, passphrase: keyPassphrase, username },
    { rawKey: rawJumpKey, passphrase: jumpPassphrase },
  );

  return {
    host,
    port,
    username,
    privateKey,
    passphrase: keyPassphrase,
    hostKeyPins: readHostKeyPins(
      { hostFingerprint: core.getInput('host-fingerprint'), knownHosts: core.getInput('known-hosts') },
      host,
      port,
    ),
    ...(jump ? { jump } : {}),
    simplestreamsDir: parseRemoteDir(
      core.getInput('simplestreams-dir') || DEFAULT_SIMPLESTREAMS_DIR,
      'simplestreams-dir',
    ),
    strictHostKey: readBoolean('strict-host-key', true),
    connectTimeout: readWholeNumber('connect-timeout', { fallback: 30, min: 1, max: 600 }),
    lockTimeout: readWholeNumber('lock-timeout', { fallback: 600, min: 1, max: 86400 }),
    lxdCompat: readBoolean('lxd-compat', true),
    summary: readBoolean('summary', true),
  };
}

/**
 * The bastion (jump-* inputs), or undefined without jump-host. The user and key default to the
 * registry's; the bastion's host key is pinned by its own inputs, with the same rules.
 */
function readJumpSettings(
  registry: { privateKey: string; passphrase: string; username: string },
  secrets: { rawKey: string; passphrase: string },
): SshEndpoint | undefined {
  const jumpInputs = ['jump-port', 'jump-username', 'jump-host-fingerprint', 'jump-known-hosts'];
  if (core.getInput('jump-host').trim() === '') {
    const stray = jumpInputs.find((name) => core.getInput(name).trim() !== '' && name !== 'jump-port');
    if (stray || secrets.rawKey.trim() !== '') {
      throw new ActionError(
        `${stray ?? 'jump-ssh-key'} is set but jump-host is not. Set jump-host to the bastion's host name or ` +
          'address, or leave the jump-* inputs out to connect to the registry directly.',
        'jump-host',
      );
    }
    return undefined;
  }
  const host = parseHost(core.getInput('jump-host'), 'jump-host');
  const port = parsePort(core.getInput('jump-port'), 'jump-port');
  const username =
    core.getInput('jump-username').trim() === ''
      ? registry.username
      : parseUsername(core.getInput('jump-username'), 'jump-username');
  let key = { privateKey: registry.privateKey, passphrase: registry.passphrase };
  if (secrets.rawKey.trim() !== '') {
    key = preparePrivateKey(secrets.rawKey, secrets.passphrase, JUMP_KEY_INPUTS);
    if (key.privateKey !== normalisePrivateKey(secrets.rawKey)) maskSecrets([key.privateKey]);
  }
  return {
    host,
    port,
    username,
    ...key,
    hostKeyPins: readHostKeyPins(
      { hostFingerprint: core.getInput('jump-host-fingerprint'), knownHosts: core.getInput('jump-known-hosts') },
      host,
      port,
      JUMP_PIN_INPUTS,
    ),
  };
}

/** Reads the publish action's settings. */
export function readSettings(): Settings {
  const registry = readRegistrySettings('publish');
  const publicUrl = core.getInput('public-url') ? validatePublicUrl(core.getInput('public-url')) : '';
  const uploadDir = parseRemoteDir(core.getInput('upload-dir') || DEFAULT_UPLOAD_DIR, 'upload-dir');
  const { serverName, mirrors, buckets } = readFleet(registry, uploadDir);
  const convertCommand = parseConvertCommand(core.getInput('convert-command'));
  if ((mirrors.length > 0 || buckets.length > 0) && convertCommand !== '') {
    throw new ActionError(
      `convert-command cannot be used with ${mirrors.length > 0 ? 'mirrors' : 'buckets'}: the owner's command makes the release live on the server as it runs, ` +
        'before every other member of the fleet has it. Publish to each server in a step of its own, or leave ' +
        'convert-command out.',
      'convert-command',
    );
  }
  return {
    ...registry,
    serverName,
    mirrors,
    buckets,
    metadataPath: parseLocalPath(requiredInput('metadata'), 'metadata'),
    rootfsPath: core.getInput('rootfs') === '' ? '' : parseLocalPath(core.getInput('rootfs'), 'rootfs'),
    uploadDir,
    aliases: parseAliases(core.getInput('aliases')),
    defaultAlias: readBoolean('default-alias'),
    replace: readBoolean('replace'),
    retries: readWholeNumber('retries', { fallback: 3, min: 0, max: 20 }),
    keepVersions: readWholeNumber('keep-versions', { fallback: 0, min: 0, max: 100000 }),
    releaseIsVersion: readBoolean('release-is-version'),
    followedAliases: followedAliases(
      core.getInput('followed-aliases').trim() === ''
        ? DEFAULT_FOLLOWED_ALIASES
        : parseAliases(core.getInput('followed-aliases'), 'followed-aliases'),
    ),
    convertCommand,
    convertRootfs: readChoice('convert-rootfs', { choices: ['auto', 'always', 'never'], fallback: 'auto' }),
    rootfsLimits: {
      maxEntries: readWholeNumber('max-rootfs-entries', { fallback: 500_000, min: 1, max: 1_000_000_000 }),
      maxBytes: readWholeNumber('max-rootfs-size', { fallback: 16384, min: 1, max: 1024 * 1024 }) * 1024 * 1024,
    },
    convertRootfsTimeout: readWholeNumber('convert-rootfs-timeout', { fallback: 1800, min: 1, max: 86400 }),
    publicUrl,
    remoteName: core.getInput('remote-name')
      ? validateRemoteName(core.getInput('remote-name').trim())
      : publicUrl
        ? defaultRemoteName(publicUrl)
        : '',
    publicCheckTimeout: readWholeNumber('public-check-timeout', { fallback: 300, min: 0, max: 3600 }),
    publicCheck: readChoice('public-check', { choices: ['fail', 'warn', 'off'], fallback: 'fail' }),
    deltaBases: readWholeNumber('delta-bases', { fallback: 1, min: 0, max: 5 }),
    deltaMaxShare: readWholeNumber('delta-max-share', { fallback: 50, min: 1, max: 100 }),
    requireDeltas: readBoolean('require-deltas'),
    dryRun: readBoolean('dry-run'),
  };
}

/**
 * The name of the host input's server, the mirrors input read with the top-level inputs as
 * defaults, and the buckets input.
 */
function readFleet(
  registry: RegistrySettings,
  uploadDir: string,
): { serverName: string; mirrors: ServerSettings[]; buckets: BucketSettings[] } {
  const serverName = registry.port === 22 ? registry.host : `${registry.host}:${registry.port}`;
  const mirrors = parseMirrors(core.getInput('mirrors'), {
    ...registry,
    uploadDir,
    knownHosts: core.getInput('known-hosts'),
    strictHostKey: registry.strictHostKey,
    connectTimeout: registry.connectTimeout,
    primary: { ...registry, name: serverName },
  });
  const buckets = parseBuckets(core.getInput('buckets'), [serverName, ...mirrors.map((mirror) => mirror.name)]);
  return { serverName, mirrors, buckets };
}

/** Reads the alias or remove sub-action's settings. */
export function readDayTwoSettings(kind: 'alias' | 'remove'): DayTwoSettings {
  const registry = readRegistrySettings(kind);
  const reference = requiredInput('fingerprint').trim();
  if (!isValidAlias(reference)) {
    throw new ActionError(
      `fingerprint: ${JSON.stringify(reference)} is neither a fingerprint nor an alias. Give the image's fingerprint ` +
        '(the fingerprint output of the publish, or `incus image list` on the registry) or one of its aliases.',
      'fingerprint',
    );
  }
  const aliases = kind === 'alias' ? parseAliases(requiredInput('aliases')) : [];
  if (kind === 'alias' && aliases.length === 0) {
    throw new ActionError(
      'aliases: no alias given. Name the aliases to put on the image, e.g. crynux-node:latest.',
      'aliases',
    );
  }
  return {
    ...registry,
    // No upload-dir: nothing is uploaded, and housekeeping leaves uploads alone.
    ...readFleet(registry, ''),
    reference,
    aliases,
    dryRun: readBoolean('dry-run'),
    force: kind === 'remove' && readBoolean('force'),
  };
}

/** Reads the check sub-action's settings. */
export function readCheckSettings(): CheckSettings {
  const registry = readRegistrySettings('check');
  return {
    ...registry,
    ...readFleet(registry, ''),
    repair: readBoolean('repair'),
    failOn: readChoice('fail-on', { choices: ['error', 'warning', 'never'], fallback: 'error' }),
    hashSeconds: readWholeNumber('hash-time', { fallback: 300, min: 0, max: 86400 }),
  };
}
