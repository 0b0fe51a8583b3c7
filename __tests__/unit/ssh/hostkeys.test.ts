import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fingerprintOf,
  hasPins,
  hostFieldMatches,
  hostKeyAllowed,
  keyTypeOf,
  parseFingerprints,
  parseKnownHosts,
  readHostKeyPins,
} from '../../../src/ssh/hostkeys.js';

let dir: string;
const keys: Record<string, { blob: Buffer; line: string; fingerprint: string }> = {};

/** A host key made by ssh-keygen, with the fingerprint OpenSSH itself prints for it. */
function makeKey(type: string): { blob: Buffer; line: string; fingerprint: string } {
  const path = join(dir, `key-${type}-${Object.keys(keys).length}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-lf', `${path}.pub`])
    .toString()
    .split(' ')[1] as string;
  return { blob: Buffer.from(line.split(' ')[1] as string, 'base64'), line, fingerprint };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostkeys-'));
  keys['ed25519'] = makeKey('ed25519');
  keys['rsa'] = makeKey('rsa');
  keys['ecdsa'] = makeKey('ecdsa');
  keys['other'] = makeKey('ed25519');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (name: string) => keys[name] as { blob: Buffer; line: string; fingerprint: string };
const knownLine = (hostField: string, name: string) =>
  `${hostField} ${key(name).line.split(' ').slice(0, 2).join(' ')}`;

describe('fingerprintOf and keyTypeOf', () => {
  it('match what ssh-keygen -lf prints', () => {
    for (const name of ['ed25519', 'rsa', 'ecdsa']) {
      expect(fingerprintOf(key(name).blob)).toBe(key(name).fingerprint);
    }
    expect(keyTypeOf(key('ed25519').blob)).toBe('ssh-ed25519');
    expect(keyTypeOf(key('rsa').blob)).toBe('ssh-rsa');
    expect(keyTypeOf(key('ecdsa').blob)).toBe('ecdsa-sha2-nistp256');
  });
});

describe('parseFingerprints', () => {
  it('takes several, separated by newlines, commas or blanks, and drops base64 padding', () => {
    const a = key('ed25519').fingerprint;
    const b = key('rsa').fingerprint;
    expect(parseFingerprints(`${a}\n${b}=`)).toEqual([a, b]);
    expect(parseFingerprints(` ${a} , ${b} `)).toEqual([a, b]);
    expect(parseFingerprints('')).toEqual([]);
  });

  it('takes the whole line ssh-keygen -lf prints, and a known_hosts or ssh-keyscan line for its key', () => {
    for (const name of ['ed25519', 'rsa', 'ecdsa']) {
      const path = join(dir, `whole-${name}.pub`);
      writeFileSync(path, `${key(name).line}\n`);
      const whole = execFileSync('ssh-keygen', ['-lf', path]).toString().trim(); // "256 SHA256:… comment (ED25519)"
      expect(whole).toMatch(/^\d+ SHA256:\S+ .* \([A-Z0-9]+\)$/);
      expect(parseFingerprints(whole)).toEqual([key(name).fingerprint]);
      expect(parseFingerprints(knownLine('[registry.example]:2222', name))).toEqual([key(name).fingerprint]);
      expect(parseFingerprints(key(name).line)).toEqual([key(name).fingerprint]);
    }
    // Several whole lines, one per key, as `ssh-keygen -lf` of several files prints them.
    const lines = ['ed25519', 'rsa'].map((name) => `256 ${key(name).fingerprint} root@registry (X)`).join('\n');
    expect(parseFingerprints(lines)).toEqual([key('ed25519').fingerprint, key('rsa').fingerprint]);
  });

  it('refuses MD5 fingerprints, missing prefixes and truncated values, naming the input', () => {
    expect(() => parseFingerprints('MD5:12:34')).toThrow(/host-fingerprint: "MD5:12:34"/);
    expect(() => parseFingerprints(key('ed25519').fingerprint.slice(7))).toThrow(/ssh-keygen -lf/);
    expect(() => parseFingerprints(key('ed25519').fingerprint.slice(0, 30))).toThrow(/host-fingerprint/);
    // ssh-keygen -lf -E md5's whole line: its fingerprint is still MD5.
    expect(() => parseFingerprints('256 MD5:12:34:56 root@registry (ED25519)')).toThrow(
      /host-fingerprint: "MD5:12:34:56"/,
    );
  });
});

describe('hostFieldMatches', () => {
  it('matches plain, bracketed-port, wildcard and negated patterns', () => {
    expect(hostFieldMatches('registry.example.org', 'registry.example.org', 22)).toBe(true);
    expect(hostFieldMatches('registry.example.org', 'registry.example.org', 2222)).toBe(false);
    expect(hostFieldMatches('[registry.example.org]:2222', 'registry.example.org', 2222)).toBe(true);
    expect(hostFieldMatches('*.example.org', 'registry.example.org', 22)).toBe(true);
    expect(hostFieldMatches('*.example.org,!registry.example.org', 'registry.example.org', 22)).toBe(false);
    expect(hostFieldMatches('other.org,10.0.0.1', '10.0.0.1', 22)).toBe(true);
  });

  it('matches hashed entries written by ssh-keygen -H', () => {
    const file = join(dir, 'known_hosts_hashed');
    writeFileSync(file, `${knownLine('[127.0.0.1]:2222', 'ed25519')}\n${knownLine('registry.example.org', 'rsa')}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const hashed = readFileSync(file, 'utf8').trim().split('\n');
    expect(hashed.every((line) => line.startsWith('|1|'))).toBe(true);
    const [first, second] = hashed.map((line) => line.split(' ')[0] as string);
    expect(hostFieldMatches(first as string, '127.0.0.1', 2222)).toBe(true);
    expect(hostFieldMatches(first as string, '127.0.0.1', 22)).toBe(false);
    expect(hostFieldMatches(second as string, 'registry.example.org', 22)).toBe(true);
    expect(hostFieldMatches(second as string, 'registry.example.com', 22)).toBe(false);
  });
});

describe('parseKnownHosts and hostKeyAllowed', () => {
  const host = 'registry.example.org';

  it('keeps only the keys for this host and port', () => {
    const text = [
      '# comment',
      '',
      knownLine(host, 'ed25519'),
      knownLine('elsewhere.org', 'rsa'),
      knownLine(`[${host}]:2222`, 'ecdsa'),
    ].join('\r\n');
    const pins = { fingerprints: [], knownKeys: parseKnownHosts(text, host, 22) };
    expect(pins.knownKeys.map((k) => k.type)).toEqual(['ssh-ed25519']);
    expect(hostKeyAllowed(pins, key('ed25519').blob)).toBe(true);
    expect(hostKeyAllowed(pins, key('rsa').blob)).toBe(false);
    expect(hostKeyAllowed(pins, key('other').blob)).toBe(false);
  });

  it('never allows a revoked key, even when a fingerprint pins it', () => {
    const text = `@revoked ${knownLine(host, 'ed25519')}`;
    const pins = { fingerprints: [key('ed25519').fingerprint], knownKeys: parseKnownHosts(text, host, 22) };
    expect(hostKeyAllowed(pins, key('ed25519').blob)).toBe(false);
    expect(hasPins({ fingerprints: [], knownKeys: parseKnownHosts(text, host, 22) })).toBe(false);
  });

  it('allows any of several pinned fingerprints (key rotation)', () => {
    const pins = { fingerprints: [key('rsa').fingerprint, key('ed25519').fingerprint], knownKeys: [] };
    expect(hostKeyAllowed(pins, key('ed25519').blob)).toBe(true);
    expect(hostKeyAllowed(pins, key('ecdsa').blob)).toBe(false);
  });

  it('refuses lines it cannot read, with the line number', () => {
    expect(() => parseKnownHosts('host-only', host, 22)).toThrow(/known-hosts: line 1/);
    expect(() => parseKnownHosts(`\n${host} ssh-rsa ${key('ed25519').line.split(' ')[1]}`, host, 22)).toThrow(
      /line 2 .*ssh-rsa/,
    );
    expect(() => parseKnownHosts(`@bogus ${knownLine(host, 'rsa')}`, host, 22)).toThrow(/unknown marker/);
  });
});

describe('readHostKeyPins: a pin input that is set must allow a key for this host and port', () => {
  const host = '127.0.0.1';
  const port = 2222;
  const read =
    (knownHosts: string, hostFingerprint = '') =>
    () =>
      readHostKeyPins({ hostFingerprint, knownHosts }, host, port);

  it('keeps the keys and fingerprints that apply', () => {
    const pins = read(
      [knownLine(`[${host}]:${port}`, 'ed25519'), knownLine('elsewhere.org', 'rsa')].join('\n'),
      key('ecdsa').fingerprint,
    )();
    expect(pins.fingerprints).toEqual([key('ecdsa').fingerprint]);
    expect(pins.knownKeys.map((k) => k.type)).toEqual(['ssh-ed25519']);
    expect(hasPins(pins)).toBe(true);
    expect(readHostKeyPins({ hostFingerprint: '', knownHosts: '' }, host, port)).toEqual({
      fingerprints: [],
      knownKeys: [],
    });
  });

  it('refuses known-hosts holding only a revoked key for this host, naming why', () => {
    expect(read(`@revoked ${knownLine(`[${host}]:${port}`, 'ed25519')}`)).toThrow(
      /^known-hosts gives no key for \[127\.0\.0\.1\]:2222: its lines for \[127\.0\.0\.1\]:2222 hold only revoked keys \(@revoked\), and a revoked key is never accepted/,
    );
  });

  it('refuses known-hosts whose lines name other hosts, listing them', () => {
    const text = [knownLine(`[registry.example.com]:${port}`, 'ed25519'), knownLine('other.example.com', 'rsa')];
    expect(read(text.join('\n'))).toThrow(
      /^known-hosts gives no key for \[127\.0\.0\.1\]:2222: it has lines but none for \[127\.0\.0\.1\]:2222; it lists \[registry\.example\.com\]:2222, other\.example\.com\./,
    );
    // Port 22 is written without brackets, and the same host on another port is another entry.
    expect(() =>
      readHostKeyPins({ hostFingerprint: '', knownHosts: knownLine(`[${host}]:2222`, 'ed25519') }, host, 22),
    ).toThrow(
      /^known-hosts gives no key for 127\.0\.0\.1: it has lines but none for 127\.0\.0\.1; it lists \[127\.0\.0\.1\]:2222/,
    );
  });

  it('refuses known-hosts with only @cert-authority lines: host certificates are not supported', () => {
    expect(read(`@cert-authority *.example.com ${key('ed25519').line.split(' ').slice(0, 2).join(' ')}`)).toThrow(
      /it has 1 @cert-authority line: host certificates are not supported, pin the host key with host-fingerprint or a plain known-hosts line/,
    );
  });

  it('refuses known-hosts with only comments', () => {
    expect(read('# nothing here\n')).toThrow(/known-hosts gives no key .*only comments or blank lines/);
  });

  it('never accepts a revoked key, whichever host its @revoked line names', () => {
    const text = [
      `@revoked other.example.com ${key('ed25519').line.split(' ').slice(0, 2).join(' ')}`,
      knownLine(`[${host}]:${port}`, 'ed25519'),
    ].join('\n');
    expect(read(text)).toThrow(/hold only revoked keys/);
    const withAnother = read(`${text}\n${knownLine(`[${host}]:${port}`, 'rsa')}`)();
    expect(hostKeyAllowed(withAnother, key('ed25519').blob)).toBe(false);
    expect(hostKeyAllowed(withAnother, key('rsa').blob)).toBe(true);
  });

  it('refuses a host-fingerprint that holds no fingerprint, or only revoked ones', () => {
    expect(read('', ' , ')).toThrow(/^host-fingerprint is set but holds no fingerprint/);
    const revoked = `@revoked [${host}]:${port} ${key('ed25519').line.split(' ').slice(0, 2).join(' ')}`;
    const plain = knownLine(`[${host}]:${port}`, 'rsa');
    expect(read(`${revoked}\n${plain}`, key('ed25519').fingerprint)).toThrow(
      /^host-fingerprint names only keys that known-hosts marks @revoked/,
    );
  });

  it('refuses a known-hosts without a usable key even when host-fingerprint is set', () => {
    expect(read(knownLine('registry.example.com', 'ed25519'), key('ed25519').fingerprint)).toThrow(
      /^known-hosts gives no key for/,
    );
  });
});
