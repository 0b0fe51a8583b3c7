/** What a failed connection says: which input to check, and what to do. */
import { ActionError, describeError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { inputName, type Hop } from './connect.js';
import type { PresentedHostKey } from './hostkeys.js';
import { offeredKeyFingerprint } from './keys.js';

export function hostKeyMismatch(options: Hop, presented: PresentedHostKey[]): ActionError {
  const input = inputName(options, options.hostKeyPins.fingerprints.length > 0 ? 'host-fingerprint' : 'known-hosts');
  const keys = presented.map((key) => `${key.type} ${key.fingerprint}`).join(', ') || 'no key of the pinned types';
  return new ActionError(
    `Host key verification failed for ${options.host}:${options.port}: the server presented ${keys}, which ` +
      `${input} does not allow. Nothing was uploaded. If the server's key was changed on purpose, update ` +
      `${input}; otherwise someone may be intercepting the connection.`,
    input,
  );
}

export function connectionError(error: unknown, options: Hop): ActionError {
  const message = describeError(error);
  const target = `${options.host}:${options.port}`;
  const code = (error as { code?: string }).code;
  const [host, port, username, key] = ['host', 'port', 'username', 'ssh-key'].map((name) =>
    inputName(options, name),
  ) as [string, string, string, string];
  if (options.via && /channel open failure|tunnel/i.test(message)) {
    return new ActionError(
      `The bastion ${options.via} could not open a connection to ${target} (${untrustedLine(message)}). Check the host and port ` +
        'inputs (as the bastion resolves and reaches them), and that the bastion allows TCP forwarding ' +
        '(AllowTcpForwarding in its sshd_config).',
      'host',
    );
  }
  if (code === 'ECONNREFUSED') {
    return new ActionError(
      `Connection to ${target} was refused. Check the ${host} and ${port} inputs, and that sshd runs.`,
      port,
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ActionError(`The host name "${options.host}" cannot be resolved. Check the ${host} input.`, host);
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new ActionError(
      `${target} cannot be reached from the runner. Check the ${host} input and the server's firewall` +
        (options.role === 'registry' && options.mirror === undefined
          ? ', or reach it through a bastion (jump-host).'
          : '.'),
      host,
    );
  }
  if (/timed out/i.test(message) || code === 'ETIMEDOUT') {
    return new ActionError(
      `Connecting to ${target} timed out. Check the ${host} and ${port} inputs and that the server accepts SSH from ` +
        (options.via ? `the bastion ${options.via}.` : 'the runner.'),
      host,
    );
  }
  if (/authentication methods failed/i.test(message)) {
    const offered = offeredKeyFingerprint(options.privateKey, options.passphrase);
    return new ActionError(
      `The server ${target} refused the key for user "${options.username}"` +
        (offered ? ` (the key offered: ${offered})` : '') +
        `. Check the ${username} input and that the key's public half is in that user's ~/.ssh/authorized_keys on ` +
        'the server (`ssh-keygen -lf ~/.ssh/authorized_keys` there lists the fingerprints it accepts).',
      key,
    );
  }
  return new ActionError(
    `SSH connection to ${target} failed: ${untrustedLine(message)}. Check the ${host} and ${port} inputs and that ` +
      'sshd answers there; run the step again with step debug on (ACTIONS_STEP_DEBUG) to see the handshake.',
    host,
  );
}
