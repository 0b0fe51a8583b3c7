import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSettings } from '../../../src/action/inputs.js';
import { parseMirrors, type MirrorDefaults } from '../../../src/action/mirrors.js';
import { ActionError } from '../../../src/common/errors.js';
import { setProcessInputs } from '../../harness/action.js';

let dir: string;
let primaryKey: string;
let mirrorKey: string;
let mirrorHostKey: string;

function makeKey(name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  return readFileSync(path, 'utf8');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mirrors-'));
  primaryKey = makeKey('primary');
  mirrorKey = makeKey('mirror');
  makeKey('host');
  mirrorHostKey = readFileSync(join(dir, 'host.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let stdout: string[];
beforeEach(() => {
  stdout = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(chunk.toString());
    return true;
  });
});
afterEach(() => {
  jest.restoreAllMocks();
});

const defaults = (overrides: Partial<MirrorDefaults> = {}): MirrorDefaults => ({
  port: 22,
  username: 'publisher',
  privateKey: primaryKey,
  passphrase: '',
  knownHosts: '',
  strictHostKey: true,
  connectTimeout: 30,
  simplestreamsDir: '/srv/lxc/simplestreams',
  uploadDir: '/srv/lxc/uploads',
  primary: { host: 'origin.example', port: 22, simplestreamsDir: '/srv/lxc/simplestreams', name: 'origin.example' },
  ...overrides,
});

/** The error parseMirrors throws, or a failure when it throws none. */
function refusal(text: string, env: NodeJS.ProcessEnv = {}, base = defaults()): ActionError {
  try {
    parseMirrors(text, base, env);
  } catch (error) {
    if (error instanceof ActionError) return error;
    throw error;
  }
  throw new Error('parseMirrors accepted the text');
}

describe('parseMirrors', () => {
  it('is empty when the input is', () => {
    expect(parseMirrors('  \n', defaults(), {})).toEqual([]);
  });

  it('takes what an entry leaves out from the top-level inputs, and its own values over them', () => {
    const env: NodeJS.ProcessEnv = { EU_SSH_KEY: mirrorKey };
    const [plain, own] = parseMirrors(
      [
        '- host: us.example',
        '- name: eu',
        '  host: eu.example',
        '  port: 2222',
        '  username: mirror',
        '  ssh-key-env: EU_SSH_KEY',
        `  known-hosts: "[eu.example]:2222 ${mirrorHostKey}"`,
        '  upload-dir: /data/uploads',
        '  simplestreams-dir: /data/simplestreams',
      ].join('\n'),
      defaults(),
      env,
    );
    expect(plain).toMatchObject({
      name: 'us.example',
      host: 'us.example',
      port: 22,
      username: 'publisher',
      privateKey: primaryKey.trim() + '\n',
      simplestreamsDir: '/srv/lxc/simplestreams',
      uploadDir: '/srv/lxc/uploads',
      strictHostKey: true,
      hostKeyPins: { fingerprints: [], knownKeys: [] },
    });
    expect(own).toMatchObject({
      name: 'eu',
      host: 'eu.example',
      port: 2222,
      username: 'mirror',
      privateKey: mirrorKey.trim() + '\n',
      simplestreamsDir: '/data/simplestreams',
      uploadDir: '/data/uploads',
    });
    expect(own?.hostKeyPins.knownKeys.map((key) => key.key)).toEqual([mirrorHostKey.split(' ')[1]]);
    // The key is taken out of the environment (no child process inherits it) and masked.
    expect(env.EU_SSH_KEY).toBeUndefined();
    expect(stdout.join('')).toContain('::add-mask::');
  });

  it('names a mirror on another port host:port, and takes the top-level known-hosts line for its host', () => {
    const knownHosts = `origin.example ${mirrorHostKey}\n[us.example]:2200 ${mirrorHostKey}\n`;
    const [mirror, unlisted] = parseMirrors(
      '- host: us.example\n  port: 2200\n- host: ap.example',
      defaults({ knownHosts }),
      {},
    );
    expect(mirror?.name).toBe('us.example:2200');
    expect(mirror?.hostKeyPins.knownKeys).toHaveLength(1);
    // No line for it: unpinned, and strict-host-key decides at the connection.
    expect(unlisted?.hostKeyPins).toEqual({ fingerprints: [], knownKeys: [] });
  });

  it('suggests the key meant by a typo, and lists the keys a mirror takes', () => {
    const error = refusal('- host: eu.example\n  simplestream-dir: /srv');
    expect(error.input).toBe('mirrors');
    expect(error.message).toContain(
      'entry 1: simplestream-dir is not a key of a mirror: did you mean simplestreams-dir?',
    );
    expect(error.message).toContain('ssh-key-env');
  });

  it('refuses a private key pasted into the input without repeating it, and masks it', () => {
    const text = `- host: eu.example\n  ssh-key: |\n${mirrorKey
      .trim()
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n')}`;
    const error = refusal(text);
    expect(error.message).toContain('holds a private key');
    expect(error.message).toContain('ssh-key-env');
    const body = mirrorKey.split('\n')[1] as string;
    expect(error.message).not.toContain(body);
    expect(stdout.join('')).toContain('::add-mask::');
  });

  it.each([
    ['lowercase', 'eu_key'],
    ['a runner variable', 'GITHUB_TOKEN'],
    ["an action's input", 'INPUT_SSH-KEY'],
    ['an input of this action', 'INPUT_SSH_KEY'],
  ])('refuses ssh-key-env naming %s', (_label, variable) => {
    const error = refusal(`- name: eu\n  host: eu.example\n  ssh-key-env: ${variable}`, {
      [variable]: mirrorKey,
    });
    expect(error.message).toContain('entry 1 (eu): ssh-key-env must name an environment variable');
  });

  it('lets two mirrors share one key variable, and takes it out of the environment once both read it', () => {
    const env: NodeJS.ProcessEnv = { FLEET_SSH_KEY: mirrorKey };
    const mirrors = parseMirrors(
      '- host: a.example\n  ssh-key-env: FLEET_SSH_KEY\n- host: b.example\n  ssh-key-env: FLEET_SSH_KEY',
      defaults(),
      env,
    );
    expect(mirrors.map((mirror) => mirror.privateKey)).toEqual([mirrorKey.trim() + '\n', mirrorKey.trim() + '\n']);
    expect(env.FLEET_SSH_KEY).toBeUndefined();
  });

  it('never repeats a value given where a variable name belongs, nor a key that does not look like one', () => {
    const secret = 'correct horse battery staple';
    const wrongPlace = refusal(`- host: eu.example\n  ssh-key-env: EU_KEY\n  ssh-key-passphrase-env: ${secret}`, {
      EU_KEY: mirrorKey,
    });
    expect(wrongPlace.message).toContain('ssh-key-passphrase-env must name an environment variable');
    expect(wrongPlace.message).not.toContain('horse');
    const body = (mirrorKey.split('\n')[1] as string).slice(0, 40);
    const pastedKey = refusal(`- host: eu.example\n  "${body}": x`);
    expect(pastedKey.message).toContain('a key (not shown, in case it is a secret) is not a key of a mirror');
    expect(pastedKey.message).not.toContain(body);
  });

  it.each(['CI', 'PATH', 'HOME'])(
    'refuses ssh-key-env naming the shell or runner variable %s, leaving it set',
    (name) => {
      const env: NodeJS.ProcessEnv = { [name]: 'true' };
      expect(refusal(`- host: eu.example\n  ssh-key-env: ${name}`, env).message).toContain(
        "not the runner's or the shell's",
      );
      expect(env[name]).toBe('true');
    },
  );

  it('says how to fill a key variable that is empty or unset', () => {
    const error = refusal('- host: eu.example\n  ssh-key-env: EU_SSH_KEY', {});
    expect(error.message).toContain('EU_SSH_KEY: ${{ secrets.EU_SSH_KEY }}');
  });

  it('names the mirror and its key when a value is wrong, not the top-level input', () => {
    const error = refusal('- name: eu\n  host: eu.example\n  port: 70000');
    expect(error.input).toBe('mirrors');
    expect(error.message).toMatch(/^mirrors: entry 1 \(eu\): .*port/);
  });

  it('refuses a passphrase without its key, a list as a value, and an entry without a host', () => {
    expect(refusal('- host: eu.example\n  ssh-key-passphrase-env: EU_PASS').message).toContain(
      'ssh-key-passphrase-env is set without ssh-key-env',
    );
    expect(refusal('- host: [a, b]').message).toContain('host must be a single value');
    expect(refusal('- port: 22').message).toContain('entry 1 has no host');
    expect(refusal('host: eu.example').message).toContain('must be a YAML list of servers');
    expect(refusal('- host: eu.example\n  host: us.example').message).toContain('not a YAML list of servers');
  });

  it('refuses two servers of one name, and the same registry twice', () => {
    expect(refusal('- name: eu\n  host: a.example\n- name: eu\n  host: b.example').message).toContain(
      'two servers are named eu',
    );
    expect(refusal('- name: again\n  host: ORIGIN.example').message).toContain(
      'again is the registry at ORIGIN.example:22 /srv/lxc/simplestreams a second time',
    );
    // A trailing dot names the same host.
    expect(refusal('- name: dotted\n  host: origin.example.').message).toContain('dotted is the registry at');
    // Another registry on the same server is a server of its own.
    expect(
      parseMirrors('- name: second\n  host: origin.example\n  simplestreams-dir: /srv/b', defaults(), {}),
    ).toHaveLength(1);
  });

  it('takes at most eight mirrors', () => {
    const list = (n: number): string => Array.from({ length: n }, (_, k) => `- host: m${k}.example`).join('\n');
    expect(parseMirrors(list(8), defaults(), {})).toHaveLength(8);
    expect(refusal(list(9)).message).toContain('at most 8 mirrors');
  });
});

describe('readSettings with mirrors', () => {
  const savedEnv = { ...process.env };
  afterEach(() => {
    process.env = { ...savedEnv };
  });

  const inputs = (extra: Record<string, string>): Record<string, string> => ({
    metadata: 'incus.tar.xz',
    rootfs: 'rootfs.squashfs',
    host: 'origin.example',
    username: 'publisher',
    'ssh-key': primaryKey,
    'strict-host-key': 'false',
    ...extra,
  });

  it('reads the mirrors beside the primary server', () => {
    setProcessInputs(inputs({ mirrors: '- host: eu.example' }));
    const settings = readSettings();
    expect(settings.serverName).toBe('origin.example');
    expect(settings.mirrors.map((mirror) => mirror.name)).toEqual(['eu.example']);
  });

  it('refuses convert-command with mirrors, naming convert-command', () => {
    setProcessInputs(inputs({ mirrors: '- host: eu.example', 'convert-command': 'incus-simplestreams add x' }));
    expect(() => readSettings()).toThrow(expect.objectContaining({ input: 'convert-command' }));
  });
});
