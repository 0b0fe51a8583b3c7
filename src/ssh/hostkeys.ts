/**
 * Host key pinning: parsing `host-fingerprint` and `known-hosts`, and matching the key a server
 * presents against them. Pure functions; the SSH module calls them from ssh2's host verifier.
 */
import { createHash, createHmac } from 'node:crypto';
import { ActionError } from '../common/errors.js';

export interface HostKeyPins {
  /** `SHA256:<base64 without padding>` values the server's key may have. */
  fingerprints: string[];
  /** Keys from known_hosts lines that apply to the host and port being connected to. */
  knownKeys: KnownHostKey[];
}

export interface KnownHostKey {
  type: string;
  /** The public key blob, base64 as in known_hosts. */
  key: string;
  revoked: boolean;
}

export interface PresentedHostKey {
  type: string;
  fingerprint: string;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** `SHA256:` fingerprint of a public key blob, exactly as `ssh-keygen -lf` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (its first string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const length = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

export function describePresentedKey(keyBlob: Buffer): PresentedHostKey {
  return { type: keyTypeOf(keyBlob), fingerprint: fingerprintOf(keyBlob) };
}

/** Parses `host-fingerprint`: one or more fingerprints separated by newlines, commas or spaces. */
export function parseFingerprints(text: string): string[] {
  const values = text
    .split(/[\s,]+/)
    .map((value) => value.trim())
    .filter((value) => value !== '');
  return values.map((value) => {
    const normalised = value.replace(/=+$/, '');
    if (!FINGERPRINT.test(normalised)) {
      throw new ActionError(
        `host-fingerprint: "${value}" is not a SHA256 host key fingerprint. ` +
          'Give the value that `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the server, ' +
          'for example SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s.',
        'host-fingerprint',
      );
    }
    return normalised;
  });
}

/** The host patterns a known_hosts line uses for this host and port. */
function hostPatterns(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
}

function hashedHostMatches(entry: string, candidates: string[]): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, host))
  const parts = entry.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const expected = parts[3] ?? '';
  return candidates.some((candidate) => createHmac('sha1', salt).update(candidate).digest('base64') === expected);
}

function wildcardToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Whether the host field of a known_hosts line (comma-separated patterns) names this host. */
export function hostFieldMatches(field: string, host: string, port: number): boolean {
  const candidates = hostPatterns(host, port);
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('|')) {
      if (hashedHostMatches(pattern, candidates)) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    const regexp = wildcardToRegExp(negated ? pattern.slice(1) : pattern);
    if (candidates.some((candidate) => regexp.test(candidate))) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * Reads known_hosts lines and keeps the keys that apply to host:port. Lines for other hosts are
 * ignored, as OpenSSH does; a line that cannot be read at all is an error, since a typo there would
 * otherwise silently disable pinning.
 */
export function parseKnownHosts(text: string, host: string, port: number): KnownHostKey[] {
  const keys: KnownHostKey[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      const marker = fields.shift();
      if (marker === '@revoked') {
        revoked = true;
      } else if (marker === '@cert-authority') {
        return; // host certificates are not used by this action
      } else {
        throw knownHostsError(index, `unknown marker ${marker ?? ''}`);
      }
    }
    const [hostField, type, key] = fields;
    if (!hostField || !type || !key || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) {
      throw knownHostsError(index, 'expected "host key-type base64-key"');
    }
    const blob = Buffer.from(key, 'base64');
    if (keyTypeOf(blob) !== type) {
      throw knownHostsError(index, `the key does not hold a ${type} key`);
    }
    if (hostFieldMatches(hostField, host, port)) {
      keys.push({ type, key, revoked });
    }
  });
  return keys;
}

function knownHostsError(index: number, problem: string): ActionError {
  return new ActionError(
    `known-hosts: line ${index + 1} cannot be read (${problem}). ` +
      'Paste lines as `ssh-keyscan -p PORT HOST` prints them, or use host-fingerprint instead.',
    'known-hosts',
  );
}

export function hasPins(pins: HostKeyPins): boolean {
  return pins.fingerprints.length > 0 || pins.knownKeys.some((key) => !key.revoked);
}

/** Whether the presented key is allowed by the pins. Revoked keys never are. */
export function hostKeyAllowed(pins: HostKeyPins, keyBlob: Buffer): boolean {
  const base64 = keyBlob.toString('base64');
  if (pins.knownKeys.some((known) => known.revoked && known.key === base64)) return false;
  const fingerprint = fingerprintOf(keyBlob);
  return (
    pins.fingerprints.includes(fingerprint) || pins.knownKeys.some((known) => !known.revoked && known.key === base64)
  );
}
