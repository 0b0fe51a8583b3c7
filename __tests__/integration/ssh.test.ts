// The SSH session against the real loopback sshd: host key negotiation when the server holds
// several keys, strict host key checking, and commands that run too long.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseFingerprints, parseKnownHosts } from '../../src/ssh/hostkeys.js';
import { connect, type ConnectOptions } from '../../src/ssh/connect.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let keysDir: string;
let rsaFingerprint: string;
let rsaPublic: string;

beforeAll(async () => {
  // sshd runs as root and reads its host keys itself: a private dir is fine.
  keysDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-hostkeys-'));
  const rsaKey = path.join(keysDir, 'ssh_host_rsa_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsaKey]);
  rsaFingerprint = execFileSync('ssh-keygen', ['-lf', `${rsaKey}.pub`])
    .toString()
    .split(' ')[1] as string;
  rsaPublic = readFileSync(`${rsaKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  // The server holds an Ed25519 key (the harness's, preferred in negotiation) and an RSA key.
  registry = await startRegistry({ sshExtraConfig: `HostKey ${rsaKey}` });
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterAll(async () => {
  jest.restoreAllMocks();
  await registry?.stop();
  await fsp.rm(keysDir, { recursive: true, force: true });
});

function options(
  pins: { fingerprint?: string; knownHosts?: string },
  extra: Partial<ConnectOptions> = {},
): ConnectOptions {
  return {
    host: registry.host,
    port: registry.sshPort,
    username: registry.username,
    privateKey: registry.privateKey,
    passphrase: '',
    hostKeyPins: {
      fingerprints: parseFingerprints(pins.fingerprint ?? ''),
      knownKeys: parseKnownHosts(pins.knownHosts ?? '', registry.host, registry.sshPort),
    },
    ...extra,
  };
}

describe('host keys', () => {
  it('negotiates the Ed25519 key by default', async () => {
    const session = await connect(options({ fingerprint: registry.hostKeyFingerprint }));
    expect(session.hostKey.type).toBe('ssh-ed25519');
    session.dispose();
  });

  it('connects when only the RSA fingerprint is pinned, though the server prefers to offer Ed25519', async () => {
    const session = await connect(options({ fingerprint: rsaFingerprint }));
    expect(session.hostKey).toEqual({ type: 'ssh-rsa', fingerprint: rsaFingerprint });
    session.dispose();
  });

  it('offers only the types known-hosts pins', async () => {
    const knownHosts = `[${registry.host}]:${registry.sshPort} ${rsaPublic}`;
    const session = await connect(options({ knownHosts }));
    expect(session.hostKey.type).toBe('ssh-rsa');
    session.dispose();
  });

  it('names every key the server presented when none matches', async () => {
    const wrong = `SHA256:${'C'.repeat(43)}`;
    await expect(connect(options({ fingerprint: wrong }))).rejects.toThrow(
      new RegExp(
        `presented ssh-ed25519 ${registry.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}, ssh-rsa ${rsaFingerprint.replace(/[+/]/g, '\\$&')}, which host-fingerprint does not allow`,
      ),
    );
  });

  it('refuses an unpinned server by default, naming the value to pin and how to check it', async () => {
    const expected = new RegExp(
      `is not pinned: neither host-fingerprint nor known-hosts is set.*Nothing was sent to it. It presented ssh-ed25519 ` +
        `${registry.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}.*ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub.*` +
        `add "host-fingerprint: ${registry.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}" to the step`,
    );
    await expect(connect(options({}))).rejects.toThrow(expected);
    await expect(connect(options({}, { strictHostKey: true }))).rejects.toThrow(expected);
  });

  it('connects to an unpinned server only when strict-host-key is false', async () => {
    const session = await connect(options({}, { strictHostKey: false }));
    expect(session.hostKey.fingerprint).toBe(registry.hostKeyFingerprint);
    session.dispose();
  });
});

describe('commands', () => {
  it('stops a command that runs past its time, and says so', async () => {
    const session = await connect(options({ fingerprint: registry.hostKeyFingerprint }));
    try {
      const started = Date.now();
      const result = await session.exec('sleep 30', { timeoutSeconds: 1 });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(result.timedOutAfter).toBe(1);
      await expect(session.run('sleep 30', { what: 'Waiting', timeoutSeconds: 1 })).rejects.toThrow(
        /Waiting failed on the server: it did not finish within 1 seconds and was stopped/,
      );
    } finally {
      session.dispose();
    }
  });

  it('reports a command killed by a signal, and one that exits non-zero, with its stderr', async () => {
    const session = await connect(options({ fingerprint: registry.hostKeyFingerprint }));
    try {
      await expect(session.run('kill -TERM $$', { what: 'Signalled' })).rejects.toThrow(
        /Signalled failed on the server: it was killed by signal (SIG)?TERM/,
      );
      await expect(session.run('echo "No space left on device" >&2; exit 1', { what: 'Writing' })).rejects.toThrow(
        /exited with status 1\.\nNo space left on device\nHint: the server's disk is full/,
      );
      await expect(session.run('exec incus-simplestreams-missing', { what: 'Converting' })).rejects.toThrow(
        /status 127/,
      );
    } finally {
      session.dispose();
    }
  });
});
