/**
 * Private key handling: undo what pasting into a secret does, read every common format, and
 * explain each kind of bad key. Keys stay in memory; nothing is written to disk.
 */
import { createHash, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import ssh2 from 'ssh2';
import { ActionError } from '../common/errors.js';

/**
 * Undoes what pasting a key into a secret does: CRLF line ends, literal "\n" instead of line
 * breaks, blanks around lines, a lost final newline.
 */
export function normalisePrivateKey(text: string): string {
  let key = text.replace(/\r\n?/g, '\n').trim();
  if (!key.includes('\n') && key.includes('\\n')) key = key.replace(/\\n/g, '\n');
  return `${key
    .split('\n')
    .map((line) => line.trim())
    .join('\n')}\n`;
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

/** Writes an Ed25519 key in the unencrypted OpenSSH format, the only Ed25519 format ssh2 reads. */
function ed25519ToOpenSsh(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  const publicKey = Buffer.from(jwk.x ?? '', 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  const check = randomBytes(4);
  let privateSection = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(''),
  ]);
  const padding = Buffer.from(Array.from({ length: (8 - (privateSection.length % 8)) % 8 }, (_, i) => i + 1));
  privateSection = Buffer.concat([privateSection, padding]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(publicBlob),
    sshString(privateSection),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/**
 * ssh2 reads OpenSSH and PKCS#1/SEC1 PEM keys, but not PKCS#8 ("BEGIN PRIVATE KEY", "BEGIN
 * ENCRYPTED PRIVATE KEY"). Node's crypto reads those; re-encode them, in memory, in a form ssh2 reads.
 */
function pkcs8ToSsh2(key: string, passphrase: string, names: KeyInputNames): string {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(passphrase === '' ? key : { key, passphrase });
  } catch (error) {
    if (key.startsWith('-----BEGIN ENCRYPTED')) {
      throw keyError(passphrase === '' ? 'missing-passphrase' : 'wrong-passphrase', names);
    }
    throw new ActionError(`${names.key}: the PKCS#8 key cannot be read (${(error as Error).message}).`, names.key);
  }
  switch (keyObject.asymmetricKeyType) {
    case 'rsa':
      return keyObject.export({ type: 'pkcs1', format: 'pem' }).toString();
    case 'ec':
      return keyObject.export({ type: 'sec1', format: 'pem' }).toString();
    case 'ed25519':
      return ed25519ToOpenSsh(keyObject);
    default:
      throw new ActionError(
        `${names.key}: ${keyObject.asymmetricKeyType ?? 'this'} keys are not supported; use an Ed25519, ECDSA or RSA key.`,
        names.key,
      );
  }
}

function keyError(kind: 'missing-passphrase' | 'wrong-passphrase', names: KeyInputNames): ActionError {
  return kind === 'missing-passphrase'
    ? new ActionError(
        `${names.passphrase}: the key is encrypted. Give its passphrase in ${names.passphrase}.`,
        names.passphrase,
      )
    : new ActionError(
        `${names.passphrase}: the passphrase does not open the key. Check the secret that holds it.`,
        names.passphrase,
      );
}

/** The names of the key inputs: the registry's, or the bastion's (`jump-ssh-key` …). */
export interface KeyInputNames {
  key: string;
  passphrase: string;
}

const REGISTRY_KEY_INPUTS: KeyInputNames = { key: 'ssh-key', passphrase: 'ssh-key-passphrase' };
export const JUMP_KEY_INPUTS: KeyInputNames = { key: 'jump-ssh-key', passphrase: 'jump-ssh-key-passphrase' };

export interface UsableKey {
  /** Key text that ssh2 reads with `passphrase` (PKCS#8 keys come back re-encoded and unencrypted). */
  privateKey: string;
  passphrase: string;
}

/** Checks the key locally, before any connection, and returns it in a form ssh2 reads. */
export function preparePrivateKey(text: string, passphrase: string, names = REGISTRY_KEY_INPUTS): UsableKey {
  if (text.trim() === '') {
    throw new ActionError(
      `${names.key}: no private key given. Set it from a secret: ${names.key}: \${{ secrets.REGISTRY_SSH_KEY }}.`,
      names.key,
    );
  }
  const key = normalisePrivateKey(text);
  if (
    /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-\S+|sk-\S+) AAAA/.test(key) ||
    key.startsWith('-----BEGIN PUBLIC KEY-----') ||
    key.startsWith('-----BEGIN SSH2 PUBLIC KEY-----')
  ) {
    throw new ActionError(
      `${names.key}: this is a public key. Give the private key (the key file without .pub, starting with "-----BEGIN").`,
      names.key,
    );
  }
  if (!key.startsWith('-----BEGIN ')) {
    throw new ActionError(
      `${names.key}: this is not a private key. Paste the whole key file, from the "-----BEGIN" line to the "-----END" line.`,
      names.key,
    );
  }
  if (!/-----END [A-Z0-9 ]+-----\n$/.test(key)) {
    throw new ActionError(
      `${names.key}: the key is cut short (no "-----END" line). Paste the whole key file into the secret.`,
      names.key,
    );
  }
  if (/^-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(key)) {
    return { privateKey: pkcs8ToSsh2(key, passphrase, names), passphrase: '' };
  }
  const parsed = ssh2.utils.parseKey(key, passphrase === '' ? undefined : passphrase);
  if (parsed instanceof Error) {
    if (/no passphrase|encrypted/i.test(parsed.message) && passphrase === '')
      throw keyError('missing-passphrase', names);
    if (/passphrase|decrypt/i.test(parsed.message)) throw keyError('wrong-passphrase', names);
    throw new ActionError(
      `${names.key}: the key cannot be read (${parsed.message}). Paste the whole private key file (OpenSSH, PEM or PKCS#8).`,
      names.key,
    );
  }
  return { privateKey: key, passphrase };
}

/**
 * The offered key's type and SHA256 fingerprint, as `ssh-keygen -lf` prints them for its public
 * half (so that a refused key can be matched with the authorized_keys line it needs); undefined
 * when the key cannot be read here.
 */
export function offeredKeyFingerprint(privateKey: string, passphrase: string): string | undefined {
  const key = ssh2.utils.parseKey(privateKey, passphrase === '' ? undefined : passphrase);
  if (key instanceof Error) return undefined;
  const blob = key.getPublicSSH();
  return `${key.type} SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
