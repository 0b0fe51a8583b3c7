/**
 * Connecting: the TCP socket, authentication, and the server's host key checked against the
 * pins (ssh/hostkeys.ts) before anything is sent. On a mismatch nothing reaches the server.
 * Behind a bastion (jump-host), the bastion is connected to the same way, pins and all, and the
 * registry's connection runs through a tunnel the bastion opens (as `ssh -J` does).
 */
import * as log from '../common/log.js';
import { NodeSSH } from 'node-ssh';
import type { ServerHostKeyAlgorithm } from 'ssh2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { debug, debugOn } from '../common/debug.js';
import { ActionError, describeError } from '../common/errors.js';
import {
  describePresentedKey,
  hasPins,
  hostKeyAllowed,
  pinsGiven,
  type HostKeyPins,
  type PresentedHostKey,
} from './hostkeys.js';
import { connectionError, hostKeyMismatch } from './connect-errors.js';
import { RemoteSession } from './session.js';

/** One SSH server to log in to: where, as whom, with which key, and the pins of its host key. */
export interface SshEndpoint {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  passphrase: string;
  hostKeyPins: HostKeyPins;
}

export interface ConnectOptions extends SshEndpoint {
  /** Refuse a server whose host key is not pinned (the default; false: warn); the bastion's too. */
  strictHostKey?: boolean;
  /** Seconds to wait for the TCP connection and SSH handshake (each hop). */
  connectTimeout?: number;
  /** A bastion to reach the registry through (the jump-* inputs). */
  jump?: SshEndpoint;
  /** The name of the mirrors entry this server is: messages then name that entry's keys. */
  mirror?: string;
}

/** Which server a connection goes to, and so which inputs its messages name. */
export type Role = 'registry' | 'bastion';

/** A mirror's keys that differ from the inputs of the same setting. */
const MIRROR_KEY_OF: Record<string, string> = {
  'ssh-key': 'ssh-key-env',
  'ssh-key-passphrase': 'ssh-key-passphrase-env',
};

/**
 * What sets `name` (host, port, ssh-key, host-fingerprint …) for this hop: the input, the jump-*
 * input for the bastion, or the key of a mirror's entry.
 */
export function inputName(hop: Pick<Hop, 'role' | 'mirror'>, name: string): string {
  if (hop.role === 'bastion') return `jump-${name}`;
  if (hop.mirror !== undefined) return `${MIRROR_KEY_OF[name] ?? name} of mirror ${hop.mirror}`;
  return name;
}

/** Where a pin is added: the step's with: block, or the mirror's entry. */
function pinAdvice(hop: Pick<Hop, 'role' | 'mirror'>, fingerprint: string): string {
  if (hop.mirror !== undefined)
    return `add "host-fingerprint: ${fingerprint}" to mirror ${hop.mirror}'s entry in mirrors`;
  return `add "${inputName(hop, 'host-fingerprint')}: ${fingerprint}" to the step`;
}

/** One hop: the endpoint, how its byte stream is opened, and the settings shared by every hop. */
export interface Hop extends SshEndpoint {
  role: Role;
  strictHostKey: boolean;
  connectTimeout: number;
  /** A fresh byte stream to the server's sshd, for each attempt. */
  openStream: () => Promise<Duplex>;
  /** Shown in messages about a registry reached through a bastion. */
  via?: string;
  /** The mirrors entry this hop is, for messages. */
  mirror?: string;
}

/** ssh2 algorithm names for each host key type that known_hosts and ssh-keygen name. */
const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/**
 * The host key algorithm lists to offer, one per connection attempt (undefined: ssh2's defaults).
 * known-hosts pins: only their types, once. Fingerprints only: the defaults first, then each type.
 */
export function hostKeyAlgorithmAttempts(pins: HostKeyPins): (string[] | undefined)[] {
  const knownTypes = [...new Set(pins.knownKeys.filter((key) => !key.revoked).map((key) => key.type))];
  if (knownTypes.length > 0 && pins.fingerprints.length === 0) {
    return [knownTypes.flatMap((type) => HOST_KEY_ALGORITHMS[type] ?? [type])];
  }
  if (pins.fingerprints.length === 0) return [undefined];
  const ecdsa = Object.entries(HOST_KEY_ALGORITHMS)
    .filter(([type]) => type.startsWith('ecdsa-'))
    .flatMap(([, names]) => names);
  return [undefined, HOST_KEY_ALGORITHMS['ssh-ed25519'], ecdsa, HOST_KEY_ALGORITHMS['ssh-rsa']] as (
    string[] | undefined
  )[];
}

/** Whether an attempt would only ask again for a key type the server already presented. */
function alreadyPresented(algorithms: string[] | undefined, presented: PresentedHostKey[]): boolean {
  if (!algorithms) return false;
  return presented.some((key) => (HOST_KEY_ALGORITHMS[key.type] ?? []).some((name) => algorithms.includes(name)));
}

type Attempt =
  | { kind: 'connected'; ssh: NodeSSH; presented: PresentedHostKey }
  | { kind: 'mismatch' | 'unpinned'; presented: PresentedHostKey }
  | { kind: 'unsupported' };

/** One connection attempt offering `algorithms` as host key types. */
async function attemptConnection(options: Hop, algorithms: string[] | undefined): Promise<Attempt> {
  const ssh = new NodeSSH();
  const pinned = hasPins(options.hostKeyPins);
  let presented: PresentedHostKey | undefined;
  let verdict: 'mismatch' | 'unpinned' | undefined;
  debug(
    `${options.role} ${options.host}:${options.port}: host key algorithms offered: ` +
      (algorithms ? algorithms.join(',') : "ssh2's defaults"),
  );
  let sock: Duplex;
  try {
    sock = await options.openStream();
  } catch (error) {
    throw connectionError(error, options);
  }
  try {
    await ssh.connect({
      sock,
      host: options.host,
      port: options.port,
      username: options.username,
      privateKey: options.privateKey,
      ...(options.passphrase === '' ? {} : { passphrase: options.passphrase }),
      readyTimeout: options.connectTimeout * 1000,
      keepaliveInterval: 15000,
      keepaliveCountMax: 4,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms as ServerHostKeyAlgorithm[] } } : {}),
      ...(debugOn() ? { debug: (line: string) => debug(`ssh2 ${options.role}: ${line}`) } : {}),
      hostVerifier: (key: Buffer): boolean => {
        presented = describePresentedKey(key);
        if (pinned && !hostKeyAllowed(options.hostKeyPins, key)) verdict = 'mismatch';
        else if (!pinned && options.strictHostKey) verdict = 'unpinned';
        debug(
          `${options.role} ${options.host}:${options.port}: host key presented: ${presented.type} ` +
            `${presented.fingerprint} (${verdict ?? (pinned ? 'pinned' : 'not pinned')})`,
        );
        return verdict === undefined;
      },
    });
  } catch (error) {
    ssh.dispose();
    sock.destroy();
    if (verdict && presented) return { kind: verdict, presented };
    if (algorithms && /no matching host ?key/i.test(describeError(error))) return { kind: 'unsupported' };
    throw connectionError(error, options);
  }
  if (!presented) {
    ssh.dispose();
    throw new ActionError(
      `The server ${options.host} presented no host key; it cannot be verified.`,
      inputName(options, 'host'),
    );
  }
  return { kind: 'connected', ssh, presented };
}

/** The name part of the sshd host key file of a key type (ssh_host_<part>_key.pub). */
function hostKeyFile(type: string): string {
  if (type === 'ssh-ed25519') return 'ed25519';
  if (type.startsWith('ecdsa-')) return 'ecdsa';
  return type === 'ssh-rsa' ? 'rsa' : '*';
}

/** A TCP connection of our own to the endpoint; its errors reach ssh2, which reports them. */
function directStream(endpoint: SshEndpoint): () => Promise<Duplex> {
  return () => {
    // Nagle's algorithm holds back the small packets of each request and answer: on a socket of
    // our own it is off from the first byte, which makes every command's round trip (and the
    // handshake's) tens of milliseconds shorter.
    const sock = net.connect({ host: endpoint.host, port: endpoint.port });
    sock.setNoDelay(true);
    return Promise.resolve(sock);
  };
}

/**
 * Connects and authenticates; on a host key mismatch, stops before anything is sent. With a
 * bastion (options.jump), connects to it first, with the same checks and its own pins, and then
 * to the registry through a tunnel it opens; closing the registry's session closes the bastion's.
 */
export async function connect(options: ConnectOptions): Promise<RemoteSession> {
  const shared = { strictHostKey: options.strictHostKey ?? true, connectTimeout: options.connectTimeout ?? 30 };
  const registry = {
    host: options.host,
    port: options.port,
    username: options.username,
    privateKey: options.privateKey,
    passphrase: options.passphrase,
    hostKeyPins: options.hostKeyPins,
    ...(options.mirror !== undefined ? { mirror: options.mirror } : {}),
  };
  if (!options.jump) {
    return connectHop({ ...registry, ...shared, role: 'registry', openStream: directStream(registry) });
  }
  const jump = options.jump;
  const bastion = await connectHop({ ...jump, ...shared, role: 'bastion', openStream: directStream(jump) });
  try {
    const session = await connectHop({
      ...registry,
      ...shared,
      role: 'registry',
      via: `${jump.host}:${jump.port}`,
      openStream: () => bastion.forwardOut(registry.host, registry.port, shared.connectTimeout),
    });
    session.runsThrough(bastion);
    return session;
  } catch (error) {
    bastion.dispose();
    throw error;
  }
}

/**
 * Connects and authenticates to one server; on a host key mismatch, stops before anything is
 * sent. Only the pinned key types are offered when known-hosts names them. With fingerprints alone
 * the types are not known: when the server presents a key of another type than the pinned one (it
 * may hold several), each other type is asked for in turn.
 */
async function connectHop(options: Hop): Promise<RemoteSession> {
  const pinned = hasPins(options.hostKeyPins);
  const knownHostsInput = inputName(options, 'known-hosts');
  const fingerprintInput = inputName(options, 'host-fingerprint');
  // Pins that allow no key (only revoked ones) must not turn into an unverified connection.
  if (!pinned && pinsGiven(options.hostKeyPins)) {
    throw new ActionError(
      `${knownHostsInput} gives only revoked keys for ${options.host}:${options.port}, and a revoked key is never ` +
        "accepted. Pin the server's current host key. Nothing was sent to the server.",
      knownHostsInput,
    );
  }
  const presentedKeys: PresentedHostKey[] = [];
  for (const algorithms of hostKeyAlgorithmAttempts(options.hostKeyPins)) {
    if (alreadyPresented(algorithms, presentedKeys)) continue;
    const attempt = await attemptConnection(options, algorithms);
    if (attempt.kind === 'connected') {
      if (!pinned) {
        const { type, fingerprint } = attempt.presented;
        log.warning(
          `The host key of ${options.host}:${options.port} was not verified. It presented ${type} ${fingerprint}. ` +
            `Pin it: ${pinAdvice(options, fingerprint)} (after checking it on the server with ` +
            `\`ssh-keygen -lf /etc/ssh/ssh_host_${hostKeyFile(type)}_key.pub\`), and drop strict-host-key: false.`,
          { title: 'Host key not pinned' },
        );
      } else {
        const what = options.role === 'bastion' ? 'Bastion host key' : 'Host key';
        log.info(`${what} verified: ${attempt.presented.type} ${attempt.presented.fingerprint}`);
      }
      return new RemoteSession(attempt.ssh, attempt.presented, options.role);
    }
    if (attempt.kind === 'unpinned') {
      const { type, fingerprint } = attempt.presented;
      throw new ActionError(
        `The host key of ${options.host}:${options.port} is not pinned: neither ${fingerprintInput} nor ` +
          `${knownHostsInput} is set, and an unverified server could be anyone's. Nothing was sent to it. It ` +
          `presented ${type} ${fingerprint}. Check that this is the server's key (on the server: ssh-keygen -lf ` +
          `/etc/ssh/ssh_host_${hostKeyFile(type)}_key.pub), then ${pinAdvice(options, fingerprint)} ` +
          '(best from a variable: vars.REGISTRY_HOST_FINGERPRINT). Only for a throwaway server, ' +
          'strict-host-key: false connects without checking, with a warning.',
        fingerprintInput,
      );
    }
    if (attempt.kind === 'mismatch') presentedKeys.push(attempt.presented);
    // 'unsupported': the server holds no key of the types asked for; try the next.
  }
  throw hostKeyMismatch(options, presentedKeys);
}
