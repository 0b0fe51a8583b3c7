/**
 * How each kind of input value is read and checked: booleans, numbers, choices, paths, hosts,
 * ports, user names, aliases, and the secrets (masked, then taken out of the environment).
 * Everything here is local: a bad value is reported before any file is read or any connection made.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { addDebugSecrets } from '../common/debug.js';
import { ActionError, hasControlCharacters, oneLine } from '../common/errors.js';

/** The inputs that hold secrets. */
const SECRET_INPUTS = ['ssh-key', 'ssh-key-passphrase', 'jump-ssh-key', 'jump-ssh-key-passphrase'];

/**
 * Removes the secret inputs from this process's environment once read, so that no child process
 * (tar, mksquashfs, …) inherits the key. The runner names them as core.getInput reads them.
 */
export function forgetSecretInputs(): void {
  for (const name of SECRET_INPUTS) delete process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`];
}

/**
 * Masks secrets in the log: each whole value, and each line of it, since the runner matches
 * masks line by line. Block markers ("-----BEGIN …") are not secret and are left readable.
 */
export function maskSecrets(values: string[]): void {
  const masks = new Set<string>();
  for (const value of values) {
    if (value === '') continue;
    masks.add(value);
    for (const line of value.split(/\r?\n|\\n/).map((part) => part.trim())) {
      if (line.length >= 8 && !/^-----(BEGIN|END) /.test(line)) masks.add(line);
    }
  }
  for (const mask of masks) core.setSecret(mask);
  addDebugSecrets([...masks]);
}

/** A boolean input; empty means `fallback` (false unless given). Typos are refused rather than read as false. */
export function readBoolean(name: string, fallback = false): boolean {
  if (core.getInput(name) === '') return fallback;
  try {
    return core.getBooleanInput(name);
  } catch {
    throw new ActionError(`${name}: "${core.getInput(name)}" is not a boolean; use true or false.`, name);
  }
}

/** A whole-number input within its range; empty gives the default. */
export function readWholeNumber(input: string, range: { fallback: number; min: number; max: number }): number {
  const text = core.getInput(input).trim();
  if (text === '') return range.fallback;
  const number = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(number) || number < range.min || number > range.max) {
    throw new ActionError(`${input}: "${text}" is not a whole number from ${range.min} to ${range.max}.`, input);
  }
  return number;
}

/** A choice input, case-insensitive; empty gives the default. */
export function readChoice<T extends string>(input: string, options: { choices: readonly T[]; fallback: T }): T {
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
export function parseConvertCommand(value: string): string {
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

export function parseLocalPath(value: string, input: string): string {
  const path = value.trim();
  if (path === '') {
    throw new ActionError(`${input}: no path given. Set it to the file distrobuilder wrote.`, input);
  }
  if (path.includes('\0') || path.includes('\n')) {
    throw new ActionError(`${input}: the path contains a NUL or newline character.`, input);
  }
  return path;
}

export function parseHost(value: string, input = 'host'): string {
  const host = value.trim();
  const prefix = input.replace(/host$/, '');
  if (host.includes('@')) {
    throw new ActionError(
      `${input}: "${host}" contains "@". Put the user name in the ${prefix}username input and only the host name or address here.`,
      input,
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) {
    throw new ActionError(`${input}: "${host}" is a URL. Give only the host name or IP address.`, input);
  }
  const bracketless = host.replace(/^\[(.*)\]$/, '$1');
  const isHostName = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(bracketless);
  // An IPv6 address has at least two colons; "name:22" or "10.0.0.1:22" is a host with a port.
  const isIPv6 = /^[0-9A-Fa-f:.]+$/.test(bracketless) && (bracketless.match(/:/g) ?? []).length >= 2;
  if (!isHostName && !isIPv6) {
    throw new ActionError(
      `${input}: "${host}" is not a host name or IP address. If it ends in ":PORT", put the port in the ${prefix}port input.`,
      input,
    );
  }
  return bracketless;
}

export function parsePort(value: string, input = 'port'): number {
  const text = value.trim();
  // An empty value means 22: the REGISTRY_PORT secret is optional, and unset secrets expand to ''.
  if (text === '') return 22;
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ActionError(`${input}: "${text}" is not a TCP port number (1-65535); leave it empty for 22.`, input);
  }
  return port;
}

export function parseUsername(value: string, input = 'username'): string {
  const username = value.trim();
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?$/.test(username) || username.length > 64) {
    throw new ActionError(
      `${input}: "${username}" is not a valid user name on the server (letters, digits, ".", "_", "-").`,
      input,
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

/** An alias the index can store: 1 to 255 characters, no comma, blank or control character. */
export function isValidAlias(alias: string): boolean {
  return alias.length >= 1 && alias.length <= 255 && !/[\s,]/.test(alias) && !hasControlCharacters(alias);
}

/**
 * Aliases: newline- or comma-separated. The index stores a product's aliases as one
 * comma-separated string, so a comma cannot be part of one; blanks and control characters could
 * not be typed in `incus launch REMOTE:ALIAS`. A colon is fine: the client splits only the first
 * one off as the remote (`crynux:crynux-node:v2.6.0`).
 */
export function parseAliases(value: string, input = 'aliases'): string[] {
  const aliases: string[] = [];
  for (const raw of value.split(/[\n,]/)) {
    const alias = raw.trim();
    if (alias === '') continue;
    if (!isValidAlias(alias)) {
      throw new ActionError(
        `${input}: "${oneLine(alias)}" is not a valid image alias ` +
          '(no blanks or control characters; at most 255 characters).',
        input,
      );
    }
    if (!aliases.includes(alias)) aliases.push(alias);
  }
  return aliases;
}
