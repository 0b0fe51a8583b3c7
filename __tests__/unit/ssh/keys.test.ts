import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils as ssh2Utils } from 'ssh2';
import { normalisePrivateKey, preparePrivateKey } from '../../../src/ssh/keys.js';

let dir: string;
interface TestKey {
  text: string;
  /** The public key as OpenSSH writes it (type and base64). */
  publicKey: string;
}
const keys: Record<string, TestKey> = {};

function publicOf(path: string, passphrase = ''): string {
  return execFileSync('ssh-keygen', ['-y', '-P', passphrase, '-f', path])
    .toString()
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
}

function sshKeygen(name: string, args: string[], passphrase = ''): TestKey {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-f', path, '-N', passphrase, ...args]);
  return { text: readFileSync(path, 'utf8'), publicKey: publicOf(path, passphrase) };
}

/** PKCS#8 keys as openssl writes them (ssh-keygen cannot write Ed25519 in PKCS#8). */
function opensslPkcs8(name: string, algorithm: string[], passphrase = ''): TestKey {
  const path = join(dir, name);
  const encrypt = passphrase === '' ? [] : ['-aes-256-cbc', '-pass', `pass:${passphrase}`];
  execFileSync('openssl', ['genpkey', ...algorithm, ...encrypt, '-out', path]);
  execFileSync('chmod', ['600', path]);
  return { text: readFileSync(path, 'utf8'), publicKey: publicOf(path, passphrase) };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'keys-'));
  keys['ed25519'] = sshKeygen('ed25519', ['-t', 'ed25519']);
  keys['ed25519-passphrase'] = sshKeygen('ed25519-p', ['-t', 'ed25519'], 'correct horse');
  keys['ecdsa'] = sshKeygen('ecdsa', ['-t', 'ecdsa']);
  keys['rsa-openssh'] = sshKeygen('rsa', ['-t', 'rsa', '-b', '2048']);
  keys['rsa-pem'] = sshKeygen('rsa-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM']);
  keys['rsa-pem-passphrase'] = sshKeygen('rsa-pem-p', ['-t', 'rsa', '-b', '2048', '-m', 'PEM'], 'correct horse');
  keys['ecdsa-pem'] = sshKeygen('ecdsa-pem', ['-t', 'ecdsa', '-m', 'PEM']);
  keys['rsa-pkcs8'] = sshKeygen('rsa-pkcs8', ['-t', 'rsa', '-b', '2048', '-m', 'PKCS8']);
  keys['ecdsa-pkcs8'] = sshKeygen('ecdsa-pkcs8', ['-t', 'ecdsa', '-m', 'PKCS8']);
  keys['ed25519-pkcs8'] = opensslPkcs8('ed-pkcs8', ['-algorithm', 'ed25519']);
  keys['ed25519-pkcs8-passphrase'] = opensslPkcs8('ed-pkcs8-p', ['-algorithm', 'ed25519'], 'correct horse');
  keys['ecdsa-pkcs8-passphrase'] = opensslPkcs8(
    'ec-pkcs8-p',
    ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    'correct horse',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (name: string): TestKey => keys[name] as TestKey;

/** The public key ssh2 derives from what preparePrivateKey returns. */
function publicKeySeenBySsh2(text: string, passphrase = ''): string {
  const usable = preparePrivateKey(text, passphrase);
  const parsed = ssh2Utils.parseKey(usable.privateKey, usable.passphrase || undefined);
  if (parsed instanceof Error) throw parsed;
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
}

describe('preparePrivateKey', () => {
  it.each([
    ['ed25519', ''],
    ['ed25519-passphrase', 'correct horse'],
    ['ecdsa', ''],
    ['rsa-openssh', ''],
    ['rsa-pem', ''],
    ['rsa-pem-passphrase', 'correct horse'],
    ['ecdsa-pem', ''],
    ['rsa-pkcs8', ''],
    ['ecdsa-pkcs8', ''],
    ['ed25519-pkcs8', ''],
    ['ed25519-pkcs8-passphrase', 'correct horse'],
    ['ecdsa-pkcs8-passphrase', 'correct horse'],
  ])('reads %s keys as the same key OpenSSH sees', (name, passphrase) => {
    const expected = key(name).publicKey.replace(/^ssh-rsa /, 'ssh-rsa ');
    expect(publicKeySeenBySsh2(key(name).text, passphrase)).toBe(expected);
  });

  it('undoes CRLF, literal \\n and a lost final newline', () => {
    const text = key('ed25519').text;
    expect(preparePrivateKey(text.replace(/\n/g, '\r\n'), '').privateKey).toBe(text);
    expect(preparePrivateKey(text.trim().replace(/\n/g, '\\n'), '').privateKey).toBe(text);
    expect(preparePrivateKey(`  ${text.trim()}  `, '').privateKey).toBe(text);
    expect(normalisePrivateKey('a\r\nb')).toBe('a\nb\n');
  });

  it('names each key problem', () => {
    const text = key('ed25519').text;
    const publicLine = readFileSync(join(dir, 'ed25519.pub'), 'utf8');
    expect(() => preparePrivateKey('', '')).toThrow(/ssh-key: no private key/);
    expect(() => preparePrivateKey(publicLine, '')).toThrow(/ssh-key: this is a public key/);
    expect(() => preparePrivateKey('just some text', '')).toThrow(/ssh-key: this is not a private key/);
    expect(() => preparePrivateKey(text.slice(0, 200), '')).toThrow(/cut short/);
    const lines = text.split('\n');
    const garbled = [lines[0], 'AAAA' + 'x'.repeat(60), lines.at(-2), ''].join('\n');
    expect(() => preparePrivateKey(garbled, '')).toThrow(/ssh-key: the key cannot be read/);
  });

  it.each(['ed25519-passphrase', 'rsa-pem-passphrase', 'ed25519-pkcs8-passphrase'])(
    'tells a missing passphrase from a wrong one (%s)',
    (name) => {
      expect(() => preparePrivateKey(key(name).text, '')).toThrow(/ssh-key-passphrase: the key is encrypted/);
      expect(() => preparePrivateKey(key(name).text, 'wrong')).toThrow(
        /ssh-key-passphrase: the passphrase does not open the key/,
      );
    },
  );
});
