import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAliases, parseHost, parsePort, parseRemoteDir, parseUsername } from '../../../src/action/input-values.js';
import { readSettings } from '../../../src/action/inputs.js';

let dir: string;
let ed25519: string;
let ed25519Public: string;
let encrypted: string;

function makeKey(name: string, args: string[]): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-f', path, ...args]);
  return readFileSync(path, 'utf8');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'inputs-'));
  ed25519 = makeKey('ed', ['-t', 'ed25519', '-N', '']);
  ed25519Public = readFileSync(join(dir, 'ed.pub'), 'utf8');
  encrypted = makeKey('enc', ['-t', 'ed25519', '-N', 'correct horse']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const savedEnv = { ...process.env };
let stdout: string[];

function setInputs(inputs: Record<string, string>): void {
  for (const name of Object.keys(process.env)) if (name.startsWith('INPUT_')) delete process.env[name];
  for (const [name, value] of Object.entries(inputs)) process.env[`INPUT_${name.toUpperCase()}`] = value;
}

const baseInputs = (): Record<string, string> => ({
  metadata: 'incus.tar.xz',
  rootfs: 'rootfs.squashfs',
  host: 'registry.example.org',
  port: '22',
  username: 'publisher',
  'ssh-key': ed25519,
  'upload-dir': '/var/www/lxc/uploads',
  'simplestreams-dir': '/var/www/lxc/simplestreams',
  'default-alias': 'false',
});

beforeEach(() => {
  stdout = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(chunk.toString());
    return true;
  });
});
afterEach(() => {
  jest.restoreAllMocks();
  process.env = { ...savedEnv };
});

describe('readSettings', () => {
  it('says which secret an empty host or username most likely comes from, and why it can be empty', () => {
    for (const [name, secret] of [
      ['host', 'REGISTRY_HOST'],
      ['username', 'REGISTRY_USER'],
    ] as const) {
      setInputs({ ...baseInputs(), [name]: '' });
      expect(() => readSettings()).toThrow(
        new RegExp(
          `^${name}: empty\\. It usually comes from a secret \\(${name}: \\$\\{\\{ secrets\\.${secret} \\}\\}\\).*not defined.*environment.*fork`,
        ),
      );
    }
  });

  it('notes that an empty port (an unset optional secret) means 22', () => {
    setInputs({ ...baseInputs(), port: '' });
    expect(readSettings().port).toBe(22);
    expect(stdout.join('')).toContain('::notice::port: empty (an unset REGISTRY_PORT secret?), so 22 was used.');
    stdout.length = 0;
    setInputs({ ...baseInputs(), port: '22' });
    readSettings();
    expect(stdout.join('')).not.toContain('port: empty');
  });

  it('reads a typical release workflow step', () => {
    setInputs({ ...baseInputs(), aliases: 'crynux-node:v2.6.0\ncrynux-node:latest', port: '' });
    const settings = readSettings();
    expect(settings).toMatchObject({
      metadataPath: 'incus.tar.xz',
      rootfsPath: 'rootfs.squashfs',
      host: 'registry.example.org',
      port: 22,
      username: 'publisher',
      aliases: ['crynux-node:v2.6.0', 'crynux-node:latest'],
      defaultAlias: false,
      uploadDir: '/var/www/lxc/uploads',
      simplestreamsDir: '/var/www/lxc/simplestreams',
      hostKeyPins: { fingerprints: [], knownKeys: [] },
    });
  });

  it('masks the key line by line and the passphrase', () => {
    setInputs({ ...baseInputs(), 'ssh-key': encrypted, 'ssh-key-passphrase': 'correct horse' });
    readSettings();
    const masks = stdout.filter((line) => line.startsWith('::add-mask::')).map((line) => line.trim().slice(12));
    expect(masks).toContain('correct horse');
    const body = encrypted.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
    for (const line of body) expect(masks).toContain(line);
  });

  it('removes the key and its passphrase from the environment once read, so that no child process inherits them', () => {
    setInputs({ ...baseInputs(), 'ssh-key': encrypted, 'ssh-key-passphrase': 'correct horse' });
    expect(process.env['INPUT_SSH-KEY']).toBe(encrypted);
    const settings = readSettings();
    expect(settings.passphrase).toBe('correct horse');
    expect(settings.privateKey).toContain('PRIVATE KEY');
    const secretNames = Object.keys(process.env).filter((name) => /^INPUT_SSH-KEY/i.test(name));
    expect(secretNames).toEqual([]);
    const values = Object.values(process.env).join('\n');
    expect(values).not.toContain('correct horse');
    for (const line of encrypted.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')))
      expect(values).not.toContain(line);
    // The other inputs stay for what reads them later.
    expect(process.env['INPUT_HOST']).toBe('registry.example.org');
  });

  it('reads default-alias as a strict boolean', () => {
    setInputs({ ...baseInputs(), 'default-alias': 'true' });
    expect(readSettings().defaultAlias).toBe(true);
    setInputs({ ...baseInputs(), 'default-alias': 'yes please' });
    expect(() => readSettings()).toThrow(/default-alias/);
  });

  it('requires metadata, host, username and ssh-key', () => {
    for (const name of ['metadata', 'host', 'username']) {
      setInputs({ ...baseInputs(), [name]: '' });
      expect(() => readSettings()).toThrow(new RegExp(name));
    }
    setInputs({ ...baseInputs(), 'ssh-key': '' });
    expect(() => readSettings()).toThrow(/ssh-key: no private key/);
  });

  it('checks host pins against the host and port', () => {
    setInputs({ ...baseInputs(), 'host-fingerprint': 'SHA256:nope' });
    expect(() => readSettings()).toThrow(/host-fingerprint/);
  });
});

describe('ssh-key', () => {
  it('is normalised and checked with its passphrase (details in keys.test.ts)', () => {
    setInputs({ ...baseInputs(), 'ssh-key': ed25519.replace(/\n/g, '\r\n') });
    expect(readSettings().privateKey).toBe(ed25519);
    setInputs({ ...baseInputs(), 'ssh-key': ed25519Public });
    expect(() => readSettings()).toThrow(/ssh-key: this is a public key/);
  });
});

describe('single inputs', () => {
  it('port: empty means 22; anything else must be 1-65535', () => {
    expect(parsePort('')).toBe(22);
    expect(parsePort(' 2222 ')).toBe(2222);
    for (const bad of ['0', '65536', '22a', '-1', '2.5']) expect(() => parsePort(bad)).toThrow(/port: /);
  });

  it('host: names and addresses; no user@, URL or :port', () => {
    expect(parseHost('lxc.crynux.io')).toBe('lxc.crynux.io');
    expect(parseHost('127.0.0.1')).toBe('127.0.0.1');
    expect(parseHost('[::1]')).toBe('::1');
    expect(() => parseHost('root@lxc.crynux.io')).toThrow(/username input/);
    expect(() => parseHost('https://lxc.crynux.io')).toThrow(/is a URL/);
    expect(() => parseHost('lxc.crynux.io:2222')).toThrow(/port input/);
    expect(() => parseHost('a b')).toThrow(/host: /);
  });

  it('username: a plain user name', () => {
    expect(parseUsername('deploy')).toBe('deploy');
    expect(() => parseUsername('de ploy')).toThrow(/username/);
    expect(() => parseUsername('$(id)')).toThrow(/username/);
  });

  it('remote directories: absolute, normalised, not /, no control characters', () => {
    expect(parseRemoteDir('/var/www/lxc/uploads/', 'upload-dir')).toBe('/var/www/lxc/uploads');
    expect(parseRemoteDir('/srv//lxc/./x', 'upload-dir')).toBe('/srv/lxc/x');
    expect(() => parseRemoteDir('uploads', 'upload-dir')).toThrow(/upload-dir: .*absolute/);
    expect(() => parseRemoteDir('/', 'simplestreams-dir')).toThrow(/simplestreams-dir/);
    expect(() => parseRemoteDir('/a\nb', 'upload-dir')).toThrow(/control characters/);
  });

  it('aliases: split on newlines and commas, deduplicated, colons allowed', () => {
    expect(parseAliases('crynux-node:v2.6.0, crynux-node:latest\n\ncrynux-node:latest')).toEqual([
      'crynux-node:v2.6.0',
      'crynux-node:latest',
    ]);
    expect(parseAliases('')).toEqual([]);
    expect(() => parseAliases('two words')).toThrow(/aliases: "two words"/);
    expect(() => parseAliases('bell\u0007')).toThrow(/aliases: "bell\?"/);
  });
});
