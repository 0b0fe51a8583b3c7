import { describe, expect, it } from '@jest/globals';
import { hostKeyAlgorithmAttempts } from '../../../src/ssh/connect.js';
import { remoteFailure } from '../../../src/ssh/remote-failure.js';

const key = (type: string, revoked = false) => ({ type, key: 'AAAA', revoked });

describe('hostKeyAlgorithmAttempts', () => {
  it('offers only the types known-hosts pins, in one attempt', () => {
    expect(hostKeyAlgorithmAttempts({ fingerprints: [], knownKeys: [key('ssh-ed25519')] })).toEqual([['ssh-ed25519']]);
    expect(
      hostKeyAlgorithmAttempts({ fingerprints: [], knownKeys: [key('ssh-rsa'), key('ssh-ed25519', true)] }),
    ).toEqual([['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']]);
  });

  it('tries each key type in turn when only fingerprints are pinned (their type is unknown)', () => {
    const attempts = hostKeyAlgorithmAttempts({ fingerprints: ['SHA256:x'], knownKeys: [] });
    expect(attempts[0]).toBeUndefined();
    expect(attempts.slice(1)).toEqual([
      ['ssh-ed25519'],
      ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'],
      ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
    ]);
  });

  it('uses the defaults once without pins', () => {
    expect(hostKeyAlgorithmAttempts({ fingerprints: [], knownKeys: [] })).toEqual([undefined]);
  });
});

describe('remoteFailure', () => {
  const result = { code: 1, signal: null, stdout: Buffer.alloc(0), stderr: '' };
  it('says how the command ended, with the end of its stderr and a hint', () => {
    expect(remoteFailure('Step', { ...result, stderr: 'mkdir: cannot create directory: Permission denied' })).toMatch(
      /^Step failed on the server: it exited with status 1\.\nmkdir: .*\nHint: the SSH user cannot write there/,
    );
    expect(remoteFailure('Step', { ...result, code: 127, stderr: 'sh: 1: incus-simplestreams: not found' })).toMatch(
      /Hint: incus-simplestreams is not installed on the server/,
    );
    expect(remoteFailure('Step', { ...result, code: null })).toMatch(/ended without an exit status/);
    expect(remoteFailure('Step', { ...result, code: null, signal: 'KILL' })).toMatch(/killed by signal KILL/);
    expect(remoteFailure('Step', { ...result, timedOutAfter: 300 })).toMatch(/did not finish within 300 seconds/);
    const long = Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n');
    const message = remoteFailure('Step', { ...result, stderr: long });
    expect(message).toContain('line 49');
    expect(message).not.toContain('line 29\n');
  });
});
