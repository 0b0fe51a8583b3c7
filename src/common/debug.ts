/**
 * Step debug logging (ACTIONS_STEP_DEBUG=true, core.isDebug()): the remote commands as sent, the
 * time of each phase, the round trips and the SSH handshake. Off by default. Every line goes
 * through here: known secrets are cut out (the runner masks them too, but a local run has no
 * runner), and the text is escaped as untrusted (ssh2's lines quote the server's banner).
 */
import * as core from '@actions/core';
import { withoutControlCharacters, withoutLegacyCommands } from './errors.js';
import * as log from './log.js';

const secrets = new Set<string>();

/** Values never to appear in a debug line (the key, each line of it, the passphrases). */
export function addDebugSecrets(values: readonly string[]): void {
  for (const value of values) if (value.length >= 4) secrets.add(value);
}

/** The secrets known so far, longest first (so that a line is cut before the whole key). */
function knownSecrets(): string[] {
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** `text` with every known secret replaced by "***". */
function redact(text: string): string {
  let result = text;
  for (const secret of knownSecrets()) result = result.split(secret).join('***');
  return result;
}

/** Whether `text` holds a known secret of 16 characters or more (a key line, say). */
export function holdsSecret(text: string): boolean {
  return knownSecrets().some((secret) => secret.length >= 16 && text.includes(secret));
}

export function debugOn(): boolean {
  return core.isDebug();
}

/**
 * One debug line (nothing without step debug): secrets cut out, untrusted text escaped. Line
 * breaks stay (a script's text reads as it is): core.debug writes them as %0A, so the whole text is
 * one `::debug::` command whose message is data; other control characters become "?", and the
 * legacy "##[" command is escaped (see common/untrusted.ts).
 */
export function debug(text: string): void {
  if (!core.isDebug()) return;
  core.debug(withoutLegacyCommands(withoutControlCharacters(redact(text))));
}

/**
 * A log group that, with step debug on, also logs how long it took (whether it succeeded or not).
 */
export async function timedGroup<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  // Groups do not nest: on one server of a fleet (whose steps run beside the others'), a line.
  const server = log.serverLabel();
  try {
    if (server !== undefined) {
      log.info(name);
      return await work();
    }
    return await core.group(name, work);
  } finally {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    debug(`phase ${JSON.stringify(name)}: ${seconds.toFixed(3)} s`);
  }
}
