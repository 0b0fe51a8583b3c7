import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils as ssh2Utils } from 'ssh2';
import { normalisePrivateKey, offeredKeyFingerprint, preparePrivateKey } from '../../../src/ssh/keys.js';

let dir: string;
interface TestKey {
  text: string;
  /** The public key as OpenSSH writes it (type and base64), derived without the code under test. */
  publicKey: string;
  /** For keys ssh-keygen made: the public key it wrote next to the private key. */
  writtenPublicKey?: string;
}
const keys: Record<string, TestKey> = {};

/** The first two fields (type and base64) of an OpenSSH public key line. */
const typeAndBlob = (line: string): string => line.trim().split(' ').slice(0, 2).join(' ');

/** A string in the SSH wire format (RFC 4251): uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

/** A non-negative integer as an SSH mpint (RFC 4251): no leading zero bytes, a zero byte added
 *  when the top bit is set. */
function sshMpint(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length && unsigned[start] === 0) start++;
  const body = unsigned.subarray(start);
  return sshString((body[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}

const sshCurveNames: Record<string, string> = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' };

/** The OpenSSH public key (type and base64) of a public key, built from its JWK: RFC 8709
 *  (ssh-ed25519), RFC 5656 (ecdsa-sha2-*, uncompressed point), RFC 4253 (ssh-rsa: e, then n). */
function opensshPublicKey(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  const field = (value: string | undefined): Buffer => Buffer.from(value ?? '', 'base64url');
  let type: string;
  let fields: Buffer[];
  switch (publicKey.asymmetricKeyType) {
    case 'ed25519':
      type = 'ssh-ed25519';
      fields = [sshString(field(jwk.x))];
      break;
    case 'ec': {
      const curve = sshCurveNames[jwk.crv ?? ''];
      if (curve === undefined) throw new Error(`no SSH name for curve ${jwk.crv}`);
      type = `ecdsa-sha2-${curve}`;
      fields = [sshString(curve), sshString(Buffer.concat([Buffer.from([4]), field(jwk.x), field(jwk.y)]))];
      break;
    }
    case 'rsa':
      type = 'ssh-rsa';
      fields = [sshMpint(field(jwk.e)), sshMpint(field(jwk.n))];
      break;
    default:
      throw new Error(`unexpected key type ${publicKey.asymmetricKeyType}`);
  }
  return `${type} ${Buffer.concat([sshString(type), ...fields]).toString('base64')}`;
}

/** The public key of a key in OpenSSH's own format, as ssh-keygen reads it. */
function sshKeygenPublicOf(path: string, passphrase = ''): string {
  return typeAndBlob(execFileSync('ssh-keygen', ['-y', '-P', passphrase, '-f', path]).toString());
}

/** The public key of a PEM or PKCS#8 key, as openssl reads it. Not ssh-keygen: OpenSSH 9.2
 *  (Debian 12) cannot read Ed25519 keys in PKCS#8 ("invalid format"). */
function opensslPublicOf(path: string, passphrase = ''): string {
  const spki = execFileSync('openssl', [
    'pkey',
    '-in',
    path,
    '-passin',
    `pass:${passphrase}`,
    '-pubout',
    '-outform',
    'DER',
  ]);
  return opensshPublicKey(createPublicKey({ key: spki, format: 'der', type: 'spki' }));
}

function sshKeygen(name: string, args: string[], passphrase = ''): TestKey {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-f', path, '-N', passphrase, ...args]);
  // -m PEM or -m PKCS8: a format openssl reads; otherwise OpenSSH's own, which only ssh-keygen reads.
  const publicKey = args.includes('-m') ? opensslPublicOf(path, passphrase) : sshKeygenPublicOf(path, passphrase);
  return {
    text: readFileSync(path, 'utf8'),
    publicKey,
    writtenPublicKey: typeAndBlob(readFileSync(`${path}.pub`, 'utf8')),
  };
}

/** PKCS#8 keys as openssl writes them (ssh-keygen cannot write Ed25519 in PKCS#8). */
function opensslPkcs8(name: string, algorithm: string[], passphrase = ''): TestKey {
  const path = join(dir, name);
  const encrypt = passphrase === '' ? [] : ['-aes-256-cbc', '-pass', `pass:${passphrase}`];
  execFileSync('openssl', ['genpkey', ...algorithm, ...encrypt, '-out', path]);
  execFileSync('chmod', ['600', path]);
  return { text: readFileSync(path, 'utf8'), publicKey: opensslPublicOf(path, passphrase) };
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
  ])('reads %s keys as the same key ssh-keygen or openssl reads', (name, passphrase) => {
    expect(publicKeySeenBySsh2(key(name).text, passphrase)).toBe(key(name).publicKey);
  });

  it('derives, for every key ssh-keygen made, the public key ssh-keygen wrote', () => {
    const made = Object.values(keys).filter((k) => k.writtenPublicKey !== undefined);
    expect(made).toHaveLength(9);
    for (const k of made) expect(k.publicKey).toBe(k.writtenPublicKey);
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

describe('offeredKeyFingerprint', () => {
  it('is what ssh-keygen -lf prints for the key, so that a refused key can be found in authorized_keys', () => {
    for (const [type, passphrase] of [
      ['ed25519', ''],
      ['ecdsa', ''],
      ['rsa', ''],
      ['ed25519', 'correct horse'],
    ] as const) {
      const path = join(dir, `offered-${type}-${passphrase.length}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-f', path]);
      const printed = execFileSync('ssh-keygen', ['-lf', `${path}.pub`])
        .toString()
        .split(' ')[1];
      const offered = offeredKeyFingerprint(readFileSync(path, 'utf8'), passphrase);
      expect(offered?.split(' ')[1]).toBe(printed);
      expect(offered?.split(' ')[0]).toBe(readFileSync(`${path}.pub`, 'utf8').split(' ')[0]);
    }
    expect(offeredKeyFingerprint('not a key', '')).toBeUndefined();
  });
});
