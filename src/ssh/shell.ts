/**
 * The one place where remote shell commands are put together. Every argument is quoted for a
 * POSIX shell (the login shell that sshd runs the command with); nothing is ever pasted in raw.
 */

/** Quotes one argument so that a POSIX shell reads it back as exactly that string. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) {
    throw new Error('a shell argument cannot contain a NUL byte');
  }
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) {
    return arg;
  }
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** One simple command: every word quoted. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) {
    throw new Error('a command needs at least one word');
  }
  return argv.map(quoteArg).join(' ');
}

/** Several commands, each run only when the previous one succeeded. */
export function commandChain(commands: readonly (readonly string[])[]): string {
  return commands.map(commandLine).join(' && ');
}

/**
 * A fixed server-side script run by `sh -c`, with every value as a quoted positional argument:
 * `name` is its $0 (shown by ps and in the shell's own error messages).
 */
export function scriptCommand(script: string, name: string, args: readonly string[]): string {
  return commandLine(['sh', '-c', script, name, ...args]);
}
