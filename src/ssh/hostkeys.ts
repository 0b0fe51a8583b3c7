/**
 * Host key pinning: parsing `host-fingerprint` and `known-hosts`, and matching the key a server
 * presents against them. Pure functions; the SSH module calls them from ssh2's host verifier.
 */
import { createHash, createHmac } from 'node:crypto';
import { ActionError, oneLine } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';

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

/** The names of the pinning inputs: the registry's, or the bastion's (`jump-host-fingerprint` …). */
export interface PinInputNames {
  fingerprint: string;
  knownHosts: string;
}

const REGISTRY_PIN_INPUTS: PinInputNames = { fingerprint: 'host-fingerprint', knownHosts: 'known-hosts' };
export const JUMP_PIN_INPUTS: PinInputNames = { fingerprint: 'jump-host-fingerprint', knownHosts: 'jump-known-hosts' };

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

/** The key a server presented, for messages: its type is the server's text, escaped. */
export function describePresentedKey(keyBlob: Buffer): PresentedHostKey {
  return { type: untrusted(keyTypeOf(keyBlob)), fingerprint: fingerprintOf(keyBlob) };
}

/** Key types whose lines (known_hosts, .pub) the fingerprint input takes too. */
const KEY_TYPE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/**
 * Parses `host-fingerprint`: fingerprints separated by newlines, commas or blanks, each as
 * `ssh-keygen -lf` prints it. A whole line that `ssh-keygen -lf` prints ("256 SHA256:… root@host
 * (ED25519)") is taken for its fingerprint, and a line with a public key (a known_hosts line, a
 * .pub file, what ssh-keyscan prints) for the key's fingerprint.
 */
export function parseFingerprints(text: string, input = REGISTRY_PIN_INPUTS.fingerprint): string[] {
  const fingerprints: string[] = [];
  for (const line of text.split(/[\n,]+/)) {
    const tokens = line
      .trim()
      .split(/\s+/)
      .filter((token) => token !== '');
    const keyAt = tokens.findIndex((token) => KEY_TYPE.test(token));
    const blob = keyAt >= 0 ? tokens[keyAt + 1] : undefined;
    if (blob !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
      fingerprints.push(fingerprintOf(Buffer.from(blob, 'base64')));
      continue;
    }
    // ssh-keygen -lf: "BITS SHA256:… COMMENT (TYPE)": the fingerprint is the only SHA256: token.
    const keygenLine =
      tokens.length >= 3 && /^\d+$/.test(tokens[0] as string) && /^\(.+\)$/.test(tokens.at(-1) as string);
    const values = keygenLine ? tokens.filter((token) => /^[A-Z0-9]+:/.test(token)) : tokens;
    for (const value of values) {
      const normalised = value.replace(/=+$/, '');
      if (!FINGERPRINT.test(normalised)) {
        throw new ActionError(
          `${input}: "${value}" is not a SHA256 host key fingerprint. ` +
            'Give the value that `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the server (the whole ' +
            'line will do), for example SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s, or a line of ssh-keyscan.',
          input,
        );
      }
      fingerprints.push(normalised);
    }
  }
  return fingerprints;
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

/** What known_hosts text says about one host and port. */
interface KnownHostsScan {
  /** Keys of lines that name this host and port (revoked or not), and revoked keys of any line. */
  keys: KnownHostKey[];
  /** Lines that are neither blank nor comments. */
  lines: number;
  /** Lines that name this host and port. */
  linesHere: number;
  /** Plain host patterns of lines that do not name this host and port. */
  otherHosts: string[];
  /** Hashed lines that do not name this host and port. */
  otherHashed: number;
  /** `@cert-authority` lines, which this action does not use. */
  certAuthorities: number;
}

function scanKnownHosts(text: string, host: string, port: number, input: string): KnownHostsScan {
  const scan: KnownHostsScan = { keys: [], lines: 0, linesHere: 0, otherHosts: [], otherHashed: 0, certAuthorities: 0 };
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    scan.lines += 1;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      const marker = fields.shift();
      if (marker === '@revoked') {
        revoked = true;
      } else if (marker === '@cert-authority') {
        scan.certAuthorities += 1; // host certificates are not used by this action
        return;
      } else {
        throw knownHostsError(input, index, `unknown marker ${marker ?? ''}`);
      }
    }
    const [hostField, type, key] = fields;
    if (!hostField || !type || !key || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) {
      throw knownHostsError(input, index, 'expected "host key-type base64-key"');
    }
    const blob = Buffer.from(key, 'base64');
    if (keyTypeOf(blob) !== type) {
      throw knownHostsError(input, index, `the key does not hold a ${type} key`);
    }
    if (hostFieldMatches(hostField, host, port)) {
      scan.linesHere += 1;
      scan.keys.push({ type, key, revoked });
      return;
    }
    // A revoked key is never accepted, whichever host its line names.
    if (revoked) scan.keys.push({ type, key, revoked });
    for (const pattern of hostField.split(',')) {
      if (pattern.startsWith('|')) scan.otherHashed += 1;
      else if (!pattern.startsWith('!') && !scan.otherHosts.includes(pattern)) scan.otherHosts.push(pattern);
    }
  });
  return scan;
}

/**
 * Reads known_hosts lines and keeps the keys that apply to host:port, and every revoked key
 * (never accepted, whichever host its line names). Lines for other hosts are ignored, as OpenSSH
 * does; a line that cannot be read at all is an error, since a typo there would otherwise silently
 * disable pinning.
 */
export function parseKnownHosts(text: string, host: string, port: number): KnownHostKey[] {
  return scanKnownHosts(text, host, port, REGISTRY_PIN_INPUTS.knownHosts).keys;
}

/**
 * The pins from the `host-fingerprint` and `known-hosts` inputs. An input that is set must give
 * at least one key this host and port may present: otherwise the run would connect unverified
 * (with a warning) although the user meant to pin, so it is an error that says why, before any
 * connection.
 */
export function readHostKeyPins(
  inputs: { hostFingerprint: string; knownHosts: string },
  host: string,
  port: number,
  names: PinInputNames = REGISTRY_PIN_INPUTS,
): HostKeyPins {
  const target = hostPatterns(host, port)[0] as string;
  const scan = scanKnownHosts(inputs.knownHosts, host, port, names.knownHosts);
  const revoked = scan.keys.filter((key) => key.revoked);
  const usableKeys = scan.keys.filter((key) => !key.revoked && !revoked.some((bad) => bad.key === key.key));
  const revokedFingerprints = revoked.map((key) => fingerprintOf(Buffer.from(key.key, 'base64')));
  const fingerprints = parseFingerprints(inputs.hostFingerprint, names.fingerprint);

  if (inputs.hostFingerprint.trim() !== '') {
    if (fingerprints.length === 0) {
      throw new ActionError(
        `${names.fingerprint} is set but holds no fingerprint. Give the value that ` +
          '`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the server (SHA256:...).',
        names.fingerprint,
      );
    }
    if (fingerprints.every((fingerprint) => revokedFingerprints.includes(fingerprint))) {
      throw new ActionError(
        `${names.fingerprint} names only keys that ${names.knownHosts} marks @revoked; a revoked key is never ` +
          "accepted. Pin the server's current host key.",
        names.fingerprint,
      );
    }
  }
  if (inputs.knownHosts.trim() !== '' && usableKeys.length === 0) {
    throw new ActionError(
      `${names.knownHosts} gives no key for ${target}: ${knownHostsProblems(scan, target, names)}`,
      names.knownHosts,
    );
  }
  return { fingerprints, knownKeys: scan.keys };
}

/** Why known_hosts text gives no usable key for `target`, with what to do. */
function knownHostsProblems(scan: KnownHostsScan, target: string, names: PinInputNames): string {
  const problems: string[] = [];
  if (scan.lines === 0) problems.push('it holds only comments or blank lines');
  if (scan.linesHere > 0) {
    problems.push(`its lines for ${target} hold only revoked keys (@revoked), and a revoked key is never accepted`);
  }
  if (scan.certAuthorities > 0) {
    problems.push(
      `it has ${scan.certAuthorities} @cert-authority line${scan.certAuthorities === 1 ? '' : 's'}: host ` +
        `certificates are not supported, pin the host key with ${names.fingerprint} or a plain ${names.knownHosts} line`,
    );
  }
  const others = [
    ...scan.otherHosts.map((pattern) => oneLine(pattern)),
    ...(scan.otherHashed > 0 ? [`${scan.otherHashed} hashed host name${scan.otherHashed === 1 ? '' : 's'}`] : []),
  ];
  if (scan.linesHere === 0 && others.length > 0)
    problems.push(`it has lines but none for ${target}; it lists ${others.join(', ')}`);
  return (
    `${problems.join('; ')}. Add the server's key as \`ssh-keyscan -p PORT HOST\` prints it (checked against ` +
    `\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on the server), or use ${names.fingerprint}.`
  );
}

function knownHostsError(input: string, index: number, problem: string): ActionError {
  const fingerprintInput = input.replace(/known-hosts$/, 'host-fingerprint');
  return new ActionError(
    `${input}: line ${index + 1} cannot be read (${problem}). ` +
      `Paste lines as \`ssh-keyscan -p PORT HOST\` prints them, or use ${fingerprintInput} instead.`,
    input,
  );
}

/** Whether the pins allow any key at all (revoked keys allow none). */
export function hasPins(pins: HostKeyPins): boolean {
  return pins.fingerprints.length > 0 || pins.knownKeys.some((key) => !key.revoked);
}

/** Whether pins were given (a fingerprint or any known_hosts key, revoked or not). */
export function pinsGiven(pins: HostKeyPins): boolean {
  return pins.fingerprints.length > 0 || pins.knownKeys.length > 0;
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
