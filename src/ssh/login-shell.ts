/**
 * Every command this action sends is quoted for a POSIX shell (ssh/shell.ts), but sshd hands it to
 * the user's login shell. A csh, tcsh or fish login shell would read the quoting otherwise (fish
 * collapses "\\" inside single quotes; csh refuses a line break in them), so a probe command
 * checks, once per connection and before anything else runs, that the shell reads a quoted
 * argument back exactly. The probe can ride with the first real command (probedScript): the
 * login shell then only runs the probe and `exec sh -s`, words every shell reads alike, and the
 * script and its quoted arguments reach that POSIX sh over stdin.
 */
import { ActionError, oneLine } from '../common/errors.js';
import type { CommandResult, RemoteSession } from './session.js';
import { commandLine, quoteArg } from './shell.js';

/** Quoting a POSIX shell reads back as it is; the others do not: a backslash pair, `$`, a line break, `!`. */
const PROBE = 'lxc-publish \\\\ $HOME\n!probe';

export async function checkLoginShell(session: RemoteSession, username: string): Promise<void> {
  const result = await session.exec(commandLine(['printf', '%s', PROBE]), { timeoutSeconds: 60 });
  const printed = result.stdout.toString('utf8');
  if (result.code === 0 && printed === PROBE) return;
  throw loginShellError(username, result);
}

/**
 * A script run by a POSIX sh that reads it, with its arguments, from stdin, after the probe:
 * one round trip for both. The script must not read stdin itself.
 */
export function probedScript(script: string, args: readonly string[]): { command: string; stdin: string } {
  const set = args.length > 0 ? `set -- ${args.map(quoteArg).join(' ')}\n` : '';
  return { command: `${commandLine(['printf', '%s', PROBE])}; exec sh -s`, stdin: `${set}{\n${script}\n}\n` };
}

/** Splits what a probed script printed: the probe first, checked, then the script's output. */
export function afterProbe(username: string, result: CommandResult): CommandResult {
  const probe = Buffer.from(PROBE, 'utf8');
  if (result.stdout.subarray(0, probe.length).equals(probe))
    return { ...result, stdout: result.stdout.subarray(probe.length) };
  throw loginShellError(username, result);
}

function loginShellError(username: string, result: CommandResult): ActionError {
  const printed = result.stdout.toString('utf8');
  const seen =
    result.code === 0
      ? `it printed ${JSON.stringify(printed.slice(0, 80))} for ${JSON.stringify(PROBE)}`
      : `it failed (${oneLine(result.stderr.trim().split('\n').at(-1) ?? `exit ${String(result.code)}`)})`;
  return new ActionError(
    `The login shell of "${username}" on the server does not read POSIX shell quoting (a test command was ` +
      `sent: ${seen}). This action quotes every command for sh; a csh, tcsh or fish login shell would read them ` +
      `otherwise. Give the user a POSIX shell on the server (chsh -s /bin/bash ${username}); if it has one, make ` +
      'its startup files (.bashrc) quiet for commands run over SSH. Nothing was uploaded.',
    'username',
  );
}
