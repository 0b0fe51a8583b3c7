/**
 * Reads and checks the action's inputs (declared in action.yml) into one typed settings object.
 * Everything here is local: a bad input is reported before any file is read or any connection made.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { ActionError, hasControlCharacters, oneLine } from '../common/errors.js';
import { defaultRemoteName, validatePublicUrl, validateRemoteName } from '../public/remote.js';
import type { DeltaOptions } from '../registry/deltas.js';
import type { RegistryPaths } from '../registry/layout.js';
import type { PublicationOptions } from '../registry/publication.js';
import type { UploadOptions } from '../registry/upload.js';
import type { ConnectOptions } from '../ssh/connect.js';
import { readHostKeyPins } from '../ssh/hostkeys.js';
import { normalisePrivateKey, preparePrivateKey } from '../ssh/keys.js';

/** The inputs every entry point shares: the connection, the registry, its lock and the LXD items. */
export interface RegistrySettings extends ConnectOptions {
  simplestreamsDir: string;
  strictHostKey: boolean;
  connectTimeout: number;
  /** Seconds to wait for the registry lock. */
  lockTimeout: number;
  /** Whether every version also carries items for LXD clients. */
  lxdCompat: boolean;
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
  /** The registry's public HTTPS address to check after publishing; '' to skip the check. */
  publicUrl: string;
  /** The remote name the job summary's commands use. */
  remoteName: string;
  /** How long the public check keeps retrying (CDN caches). */
  publicCheckTimeout: number;
}

/** The alias and remove sub-actions: an image already published, named by `fingerprint`. */
export interface DayTwoSettings extends RegistrySettings {
  /** A fingerprint, the start of one, or an alias (resolved on the live index). */
  reference: string;
  /** For the alias sub-action. */
  aliases: string[];
  dryRun: boolean;
}

const DEFAULT_UPLOAD_DIR = '/var/www/lxc/uploads';
const DEFAULT_SIMPLESTREAMS_DIR = '/var/www/lxc/simplestreams';

/** Reads the inputs every entry point shares (INPUT_* variables). */
export function readRegistrySettings(): RegistrySettings {
  // Secrets first, so that nothing printed while checking the rest can reveal them.
  const rawKey = core.getInput('ssh-key');
  const passphrase = core.getInput('ssh-key-passphrase');
  maskSecrets([rawKey, passphrase]);
  forgetSecretInputs();

  const host = parseHost(core.getInput('host', { required: true }));
  const port = parsePort(core.getInput('port'));
  const { privateKey, passphrase: keyPassphrase } = preparePrivateKey(rawKey, passphrase);
  // A PKCS#8 key comes back re-encoded: mask that form too.
  if (privateKey !== normalisePrivateKey(rawKey)) maskSecrets([privateKey]);

  return {
    host,
    port,
    username: parseUsername(core.getInput('username', { required: true })),
    privateKey,
    passphrase: keyPassphrase,
    hostKeyPins: readHostKeyPins(
      { hostFingerprint: core.getInput('host-fingerprint'), knownHosts: core.getInput('known-hosts') },
      host,
      port,
    ),
    simplestreamsDir: parseRemoteDir(
      core.getInput('simplestreams-dir') || DEFAULT_SIMPLESTREAMS_DIR,
      'simplestreams-dir',
    ),
    strictHostKey: readBoolean('strict-host-key'),
    connectTimeout: readWholeNumber('connect-timeout', { fallback: 30, min: 1, max: 600 }),
    lockTimeout: readWholeNumber('lock-timeout', { fallback: 600, min: 1, max: 86400 }),
    lxdCompat: core.getInput('lxd-compat') === '' ? true : readBoolean('lxd-compat'),
  };
}

/** Reads the publish action's settings. */
export function readSettings(): Settings {
  const registry = readRegistrySettings();
  const publicUrl = core.getInput('public-url') ? validatePublicUrl(core.getInput('public-url')) : '';
  return {
    ...registry,
    metadataPath: parseLocalPath(core.getInput('metadata', { required: true }), 'metadata'),
    rootfsPath: core.getInput('rootfs') === '' ? '' : parseLocalPath(core.getInput('rootfs'), 'rootfs'),
    uploadDir: parseRemoteDir(core.getInput('upload-dir') || DEFAULT_UPLOAD_DIR, 'upload-dir'),
    aliases: parseAliases(core.getInput('aliases')),
    defaultAlias: readBoolean('default-alias'),
    replace: readBoolean('replace'),
    retries: readWholeNumber('retries', { fallback: 3, min: 0, max: 20 }),
    keepVersions: readWholeNumber('keep-versions', { fallback: 0, min: 0, max: 100000 }),
    convertCommand: parseConvertCommand(core.getInput('convert-command')),
    convertRootfs: readChoice('convert-rootfs', { choices: ['auto', 'always', 'never'], fallback: 'auto' }),
    publicUrl,
    remoteName: core.getInput('remote-name')
      ? validateRemoteName(core.getInput('remote-name').trim())
      : publicUrl
        ? defaultRemoteName(publicUrl)
        : '',
    publicCheckTimeout: readWholeNumber('public-check-timeout', { fallback: 300, min: 0, max: 3600 }),
    deltaBases: readWholeNumber('delta-bases', { fallback: 1, min: 0, max: 5 }),
    deltaMaxShare: readWholeNumber('delta-max-share', { fallback: 50, min: 1, max: 100 }),
    requireDeltas: readBoolean('require-deltas'),
  };
}

/** Reads the alias or remove sub-action's settings. */
export function readDayTwoSettings(kind: 'alias' | 'remove'): DayTwoSettings {
  const registry = readRegistrySettings();
  const reference = core.getInput('fingerprint', { required: true }).trim();
  if (!/^[A-Za-z0-9][^\s,\u0000-\u001f\u007f]{0,254}$/.test(reference)) {
    throw new ActionError(
      `fingerprint: ${JSON.stringify(reference)} is neither a fingerprint nor an alias. Give the image's fingerprint ` +
        '(the fingerprint output of the publish, or `incus image list` on the registry) or one of its aliases.',
      'fingerprint',
    );
  }
  const aliases = kind === 'alias' ? parseAliases(core.getInput('aliases', { required: true })) : [];
  if (kind === 'alias' && aliases.length === 0) {
    throw new ActionError(
      'aliases: no alias given. Name the aliases to put on the image, e.g. crynux-node:latest.',
      'aliases',
    );
  }
  return { ...registry, reference, aliases, dryRun: readBoolean('dry-run') };
}

/** The inputs that hold secrets. */
const SECRET_INPUTS = ['ssh-key', 'ssh-key-passphrase'];

/**
 * Removes the secret inputs from this process's environment once read, so that no child process
 * (tar, mksquashfs, …) inherits the key. The runner names them as core.getInput reads them.
 */
function forgetSecretInputs(): void {
  for (const name of SECRET_INPUTS) delete process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`];
}

/**
 * Masks secrets in the log: each whole value, and each line of it, since the runner matches
 * masks line by line. Block markers ("-----BEGIN …") are not secret and are left readable.
 */
function maskSecrets(values: string[]): void {
  const masks = new Set<string>();
  for (const value of values) {
    if (value === '') continue;
    masks.add(value);
    for (const line of value.split(/\r?\n|\\n/).map((part) => part.trim())) {
      if (line.length >= 8 && !/^-----(BEGIN|END) /.test(line)) masks.add(line);
    }
  }
  for (const mask of masks) core.setSecret(mask);
}

/** A boolean input; empty means false. Typos are refused rather than read as false. */
function readBoolean(name: string): boolean {
  if (core.getInput(name) === '') return false;
  try {
    return core.getBooleanInput(name);
  } catch {
    throw new ActionError(`${name}: "${core.getInput(name)}" is not a boolean; use true or false.`, name);
  }
}

/** A whole-number input within its range; empty gives the default. */
function readWholeNumber(input: string, range: { fallback: number; min: number; max: number }): number {
  const text = core.getInput(input).trim();
  if (text === '') return range.fallback;
  const number = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(number) || number < range.min || number > range.max) {
    throw new ActionError(`${input}: "${text}" is not a whole number from ${range.min} to ${range.max}.`, input);
  }
  return number;
}

/** A choice input, case-insensitive; empty gives the default. */
function readChoice<T extends string>(input: string, options: { choices: readonly T[]; fallback: T }): T {
  const value = core.getInput(input);
  const text = value.trim().toLowerCase();
  if (text === '') return options.fallback;
  if (!(options.choices as readonly string[]).includes(text)) {
    throw new ActionError(`${input}: "${value.trim()}" is not one of ${options.choices.join(', ')}.`, input);
  }
  return text as T;
}

/**
 * The owner's convert script: the path (or name on the server's PATH) of an executable, run with
 * documented positional arguments. Arguments of its own belong in a wrapper script, so that no
 * input is ever parsed as shell code.
 */
function parseConvertCommand(value: string): string {
  const command = value.trim();
  if (command === '') return '';
  if (!/^[A-Za-z0-9_./+@-]+$/.test(command) || command.startsWith('-')) {
    throw new ActionError(
      `convert-command: "${oneLine(command)}" is not the path of an executable. Give only the ` +
        "script's path on the server (for example /usr/local/bin/process-lxc-images.sh); put any fixed arguments " +
        'in that script.',
      'convert-command',
    );
  }
  return command;
}

function parseLocalPath(value: string, input: string): string {
  const path = value.trim();
  if (path === '') {
    throw new ActionError(`${input}: no path given. Set it to the file distrobuilder wrote.`, input);
  }
  if (path.includes('\0') || path.includes('\n')) {
    throw new ActionError(`${input}: the path contains a NUL or newline character.`, input);
  }
  return path;
}

export function parseHost(value: string): string {
  const host = value.trim();
  if (host.includes('@')) {
    throw new ActionError(
      `host: "${host}" contains "@". Put the user name in the username input and only the host name or address here.`,
      'host',
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) {
    throw new ActionError(`host: "${host}" is a URL. Give only the host name or IP address.`, 'host');
  }
  const bracketless = host.replace(/^\[(.*)\]$/, '$1');
  const isHostName = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(bracketless);
  // An IPv6 address has at least two colons; "name:22" or "10.0.0.1:22" is a host with a port.
  const isIPv6 = /^[0-9A-Fa-f:.]+$/.test(bracketless) && (bracketless.match(/:/g) ?? []).length >= 2;
  if (!isHostName && !isIPv6) {
    throw new ActionError(
      `host: "${host}" is not a host name or IP address. If it ends in ":PORT", put the port in the port input.`,
      'host',
    );
  }
  return bracketless;
}

export function parsePort(value: string): number {
  const text = value.trim();
  // An empty value means 22: the REGISTRY_PORT secret is optional, and unset secrets expand to ''.
  if (text === '') return 22;
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ActionError(`port: "${text}" is not a TCP port number (1-65535); leave it empty for 22.`, 'port');
  }
  return port;
}

export function parseUsername(value: string): string {
  const username = value.trim();
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?$/.test(username) || username.length > 64) {
    throw new ActionError(
      `username: "${username}" is not a valid user name on the server (letters, digits, ".", "_", "-").`,
      'username',
    );
  }
  return username;
}

export function parseRemoteDir(value: string, input: string): string {
  const dir = value.trim();
  if (!dir.startsWith('/')) {
    throw new ActionError(`${input}: "${dir}" is not an absolute path on the server; start it with "/".`, input);
  }
  if (hasControlCharacters(dir)) {
    throw new ActionError(`${input}: the path contains control characters (newline, NUL, …).`, input);
  }
  const normalised = posix.normalize(dir).replace(/(.)\/+$/, '$1');
  if (normalised === '/') {
    throw new ActionError(`${input}: "/" cannot be used; give the registry's own directory.`, input);
  }
  return normalised;
}

/**
 * Aliases: newline- or comma-separated. The index stores a product's aliases as one
 * comma-separated string, so a comma cannot be part of one; blanks and control characters could
 * not be typed in `incus launch REMOTE:ALIAS`. A colon is fine: the client splits only the first
 * one off as the remote (`crynux:crynux-node:v2.6.0`).
 */
export function parseAliases(value: string): string[] {
  const aliases: string[] = [];
  for (const raw of value.split(/[\n,]/)) {
    const alias = raw.trim();
    if (alias === '') continue;
    if (hasControlCharacters(alias) || /\s/.test(alias) || alias.length > 255) {
      throw new ActionError(
        `aliases: "${oneLine(alias)}" is not a valid image alias ` +
          '(no blanks or control characters; at most 255 characters).',
        'aliases',
      );
    }
    if (!aliases.includes(alias)) aliases.push(alias);
  }
  return aliases;
}
