/** What a failed remote command says in the step's error: how it ended, its stderr, and a hint. */
import { INSTALL_FLOCK, INSTALL_INCUS_SIMPLESTREAMS } from '../common/hints.js';
import type { CommandResult } from './session.js';

/** Keeps only the end of a long stderr, which is where tools say what went wrong. */
function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function remoteFailure(what: string, result: CommandResult): string {
  const status =
    result.timedOutAfter !== undefined
      ? `did not finish within ${result.timedOutAfter} seconds and was stopped`
      : result.signal !== null
        ? `was killed by signal ${result.signal}`
        : result.code === null
          ? 'ended without an exit status'
          : `exited with status ${result.code}`;
  const stderr = tail(result.stderr);
  return `${what} failed on the server: it ${status}.${stderr ? `\n${stderr}` : ''}${hintFor(stderr, result.code)}`;
}

/** Hints for the usual causes of a failing remote step. */
function hintFor(stderr: string, code: number | null): string {
  if (/No space left on device/i.test(stderr)) {
    return "\nHint: the server's disk is full. Free space in upload-dir and simplestreams-dir.";
  }
  if (/Permission denied/i.test(stderr)) {
    return '\nHint: the SSH user cannot write there. Give it ownership of upload-dir and simplestreams-dir (see docs/server-setup.md).';
  }
  if (/can't cd|cd: .*(No such file|not found)/i.test(stderr)) {
    return '\nHint: the directory does not exist on the server. Check upload-dir and simplestreams-dir, or create them (see docs/server-setup.md).';
  }
  const missing = /([\w.+-]+): (?:command )?not found/i.exec(stderr)?.[1];
  if (code === 127 || missing) {
    if (missing === undefined || missing === 'incus-simplestreams') {
      return `\nHint: incus-simplestreams is not installed on the server. ${INSTALL_INCUS_SIMPLESTREAMS}`;
    }
    if (missing === 'flock') return `\nHint: flock is not installed on the server. ${INSTALL_FLOCK}`;
    return `\nHint: ${missing} is not installed on the server, or not on the SSH user's PATH.`;
  }
  return '';
}
